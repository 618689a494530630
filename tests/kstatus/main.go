// kstatus prints what Flux's kstatus library computes for one live object:
//
//	kstatus KUBECONFIG GROUP VERSION RESOURCE NAMESPACE NAME
//
// Output: one JSON line {"status": "...", "message": "..."}. The e2e suite runs it to prove
// that Flux (and anything else built on kstatus) reads our resources right.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: kstatus KUBECONFIG GROUP VERSION RESOURCE NAMESPACE NAME")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", os.Args[1])
	if err != nil {
		fail(err)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		fail(err)
	}
	gvr := schema.GroupVersionResource{Group: os.Args[2], Version: os.Args[3], Resource: os.Args[4]}
	obj, err := client.Resource(gvr).Namespace(os.Args[5]).Get(context.Background(), os.Args[6], metav1.GetOptions{})
	if err != nil {
		fail(err)
	}
	result, err := status.Compute(obj)
	if err != nil {
		fail(err)
	}
	out, _ := json.Marshal(map[string]string{"status": result.Status.String(), "message": result.Message})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
