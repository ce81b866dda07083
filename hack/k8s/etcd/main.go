// etcd for the test control plane: go.etcd.io/etcd/server/v3 has relative replaces, so it cannot be
// `go install`ed; this wrapper builds the same etcdmain at the version kube-apiserver v1.34 is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
