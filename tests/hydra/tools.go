//go:build tools

// Keeps Hydra in go.mod through `go mod tidy`; build.sh builds it.
package tools

import _ "github.com/ory/hydra/v2"
