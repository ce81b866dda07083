//go:build tools

// Package k8sbins pins the Kubernetes binaries the tests build; `go build` picks them by import path.
// kube-scheduler and kube-controller-manager are only run by `hack/cluster.sh up --full`.
package k8sbins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
