// gobench is the Go side of bench/manager: what a Go runtime embedding libcni does for
// each pod (kubelet / go-cni: the loopback network, then the default network), for many
// pods, `parallel` at a time, all in one process - so the figure is libcni + Go plugins,
// not process start-up of a driver.
//
// usage: gobench CONFDIR CACHEDIR PARALLEL NETNS...
// Prints {"setup_s": S, "teardown_s": T, "pods": N} on stdout.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
)

const loopback = `{"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}`

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 5 {
		fail(fmt.Errorf("usage: gobench CONFDIR CACHEDIR PARALLEL NETNS..."))
	}
	files, err := libcni.ConfFiles(os.Args[1], []string{".conflist"})
	if err != nil || len(files) == 0 {
		fail(fmt.Errorf("no conflist in %s: %v", os.Args[1], err))
	}
	def, err := libcni.ConfListFromFile(files[0])
	if err != nil {
		fail(err)
	}
	lo, err := libcni.ConfListFromBytes([]byte(loopback))
	if err != nil {
		fail(err)
	}
	parallel, _ := strconv.Atoi(os.Args[3])
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Args[2], nil)
	netnses := os.Args[4:]
	ctx := context.Background()
	run := func(op func(int) error) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		slots := make(chan struct{}, parallel)
		errs := make(chan error, len(netnses))
		for i := range netnses {
			wg.Add(1)
			slots <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-slots }()
				if err := op(i); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			fail(err)
		}
		return time.Since(start)
	}
	rt := func(i int, ifname string) *libcni.RuntimeConf {
		pod := fmt.Sprintf("gopod%04d", i)
		return &libcni.RuntimeConf{ContainerID: pod, NetNS: netnses[i], IfName: ifname,
			Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"},
				{"K8S_POD_NAME", pod}, {"K8S_POD_INFRA_CONTAINER_ID", pod}}}
	}
	setup := run(func(i int) error {
		if _, err := cni.AddNetworkList(ctx, lo, rt(i, "lo")); err != nil {
			return err
		}
		_, err := cni.AddNetworkList(ctx, def, rt(i, "eth0"))
		return err
	})
	teardown := run(func(i int) error {
		if err := cni.DelNetworkList(ctx, def, rt(i, "eth0")); err != nil {
			return err
		}
		return cni.DelNetworkList(ctx, lo, rt(i, "lo"))
	})
	out, _ := json.Marshal(map[string]any{"setup_s": setup.Seconds(), "teardown_s": teardown.Seconds(), "pods": len(netnses)})
	fmt.Println(string(out))
}
