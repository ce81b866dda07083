//go:build tools

// Package k8sbins pins the Kubernetes binaries the tests build; `go build` picks them by import path.
package k8sbins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
