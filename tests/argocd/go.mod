// The Argo CD Lua engine (gopher-lua) for the tests of deploy/argocd/.
module oauth-operator.dev/argocd-lua

go 1.25.0

require github.com/yuin/gopher-lua v1.1.1
