// argocd-lua runs the Argo CD health check and actions of deploy/argocd/ in the engine Argo CD
// runs them in: gopher-lua, with the libraries Argo CD opens for a resource customization of
// argocd-cm (useOpenLibs unset): package, base, table, and an os library offering only time
// and date. No string, math or io library: a script that needs one fails here as in Argo CD.
//
//	argocd-lua test CASES.json    runs the cases; one line per case, then "N passed, N failed"
//	argocd-lua run SCRIPT         runs SCRIPT on the object (JSON) on standard input and prints
//	                              what it returns, as JSON
//
// A case: {"name", "script" (relative to the cases file), "object", "expect": {JSON pointer:
// value}, "match": {JSON pointer: regular expression}}, checked against what the script returns.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type testCase struct {
	Name   string            `json:"name"`
	Script string            `json:"script"`
	Object map[string]any    `json:"object"`
	Expect map[string]any    `json:"expect"`
	Match  map[string]string `json:"match"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua test CASES.json | argocd-lua run SCRIPT < object.json")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "test":
		os.Exit(test(os.Args[2]))
	case "run":
		var obj map[string]any
		input, err := io.ReadAll(os.Stdin)
		if err == nil {
			err = json.Unmarshal(input, &obj)
		}
		if err != nil {
			fail(err)
		}
		out, err := run(os.Args[2], obj)
		if err != nil {
			fail(err)
		}
		text, _ := json.Marshal(out)
		fmt.Println(string(text))
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-lua:", err)
	os.Exit(1)
}

// test runs every case of the file and returns the exit code.
func test(file string) int {
	text, err := os.ReadFile(file)
	if err != nil {
		fail(err)
	}
	var cases []testCase
	if err := json.Unmarshal(text, &cases); err != nil {
		fail(fmt.Errorf("%s: %w", file, err))
	}
	passed, failed := 0, 0
	for _, c := range cases {
		out, err := run(filepath.Join(filepath.Dir(file), c.Script), c.Object)
		problem := ""
		if err != nil {
			problem = err.Error()
		} else {
			problem = check(c, out)
		}
		if problem == "" {
			passed++
			fmt.Println("ok     " + c.Name)
		} else {
			failed++
			fmt.Printf("FAILED %s: %s\n", c.Name, problem)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		return 1
	}
	return 0
}

// check returns what of the case's expectations `out` does not meet ("" when all hold).
func check(c testCase, out any) string {
	var problems []string
	for _, pointer := range sortedKeys(c.Expect) {
		if got := at(out, pointer); !reflect.DeepEqual(got, c.Expect[pointer]) {
			problems = append(problems, fmt.Sprintf("%s is %v, want %v", pointer, got, c.Expect[pointer]))
		}
	}
	for _, pointer := range sortedKeys(c.Match) {
		got, _ := at(out, pointer).(string)
		if !regexp.MustCompile(c.Match[pointer]).MatchString(got) {
			problems = append(problems, fmt.Sprintf("%s is %q, want a match of %s", pointer, got, c.Match[pointer]))
		}
	}
	return strings.Join(problems, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// at follows a JSON pointer (RFC 6901) into a decoded JSON value; nil where it leads nowhere.
func at(value any, pointer string) any {
	if pointer == "" {
		return value
	}
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		switch v := value.(type) {
		case map[string]any:
			value = v[token]
		case []any:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(v) {
				return nil
			}
			value = v[i]
		default:
			return nil
		}
	}
	return value
}

// run executes a script with `obj` as Argo CD does and returns the table it returns, as JSON
// values (numbers as float64, as encoding/json decodes them).
func run(script string, obj map[string]any) (any, error) {
	source, err := os.ReadFile(script)
	if err != nil {
		return nil, err
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, lua.OpenOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	// Argo CD's os library offers time and date only.
	full := l.GetGlobal(lua.OsLibName).(*lua.LTable)
	safe := l.NewTable()
	for _, name := range []string{"time", "date"} {
		safe.RawSetString(name, full.RawGetString(name))
	}
	l.SetGlobal(lua.OsLibName, safe)
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(safe)
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(string(source)); err != nil {
		return nil, err
	}
	returned := l.Get(-1)
	if returned.Type() != lua.LTTable {
		return nil, fmt.Errorf("%s returned a %s, not a table", script, returned.Type())
	}
	return fromLua(returned), nil
}

func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// fromLua converts as Argo CD's JSON encoding of a result does: a table with only the keys
// 1..n is an array (an empty one too), any other an object.
func fromLua(value lua.LValue) any {
	switch v := value.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LNumber:
		return float64(v)
	case lua.LString:
		return string(v)
	case *lua.LTable:
		n := v.MaxN()
		count := 0
		v.ForEach(func(lua.LValue, lua.LValue) { count++ })
		if count == n {
			array := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				array = append(array, fromLua(v.RawGetInt(i)))
			}
			return array
		}
		object := map[string]any{}
		v.ForEach(func(key, item lua.LValue) { object[key.String()] = fromLua(item) })
		return object
	}
	return nil
}
