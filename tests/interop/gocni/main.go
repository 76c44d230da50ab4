// gocni drives Go's libcni (Debian's golang-github-appc-cni-dev) so corecni's
// interop tests can compare against the reference runtime in one run.
//
// usage: gocni add|check|del CONFLIST NETNS CONTAINERID IFNAME CACHEDIR [CAPARGS_JSON]
//        gocni version TYPE
// CNI_PATH comes from the environment. Results go to stdout as JSON; errors to
// stderr with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: gocni add|check|del CONFLIST NETNS CONTAINERID IFNAME CACHEDIR [CAPARGS] | version TYPE"))
	}
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	ctx := context.Background()
	if os.Args[1] == "version" {
		cni := libcni.NewCNIConfig(paths, nil)
		info, err := cni.GetVersionInfo(ctx, os.Args[2])
		if err != nil {
			fail(err)
		}
		out, _ := json.Marshal(info.SupportedVersions())
		fmt.Println(string(out))
		return
	}
	if len(os.Args) < 7 {
		fail(fmt.Errorf("not enough arguments"))
	}
	list, err := libcni.ConfListFromFile(os.Args[2])
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(paths, os.Args[6], nil)
	rt := &libcni.RuntimeConf{
		ContainerID: os.Args[4],
		NetNS:       os.Args[3],
		IfName:      os.Args[5],
	}
	if len(os.Args) > 7 && os.Args[7] != "" {
		if err := json.Unmarshal([]byte(os.Args[7]), &rt.CapabilityArgs); err != nil {
			fail(err)
		}
	}
	switch os.Args[1] {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
