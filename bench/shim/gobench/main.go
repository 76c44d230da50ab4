// shimbench is the Go side of bench/shim: Go's libcni driving one conflist for many
// pods, one pod at a time, timing every AddNetworkList and DelNetworkList - what a
// Go runtime pays per pod for whichever plugins CNI_PATH holds (Go's, or corecni's
// shims). It also times exec'd VERSION calls and reads a plugin's peak RSS.
//
// usage: shimbench pods CONFLIST CACHEDIR NETNS...   -> {"add_ms": [...], "del_ms": [...]}
//        shimbench version EXE N                     -> {"ms": [...]}
//        shimbench rss EXE CONFFILE NETNS ID         -> {"add_kb": K, "del_kb": K}
// CNI_PATH (and anything else, e.g. CORECNI_DAEMON_SOCKET) comes from the environment.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func emit(v any) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

func pods(conf, cache string, netnses []string) {
	list, err := libcni.ConfListFromFile(conf)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cache, nil)
	ctx := context.Background()
	rt := func(i int) *libcni.RuntimeConf {
		pod := fmt.Sprintf("shimpod%04d", i)
		return &libcni.RuntimeConf{ContainerID: pod, NetNS: netnses[i], IfName: "eth0",
			Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"},
				{"K8S_POD_NAME", pod}, {"K8S_POD_INFRA_CONTAINER_ID", pod}}}
	}
	var adds, dels []float64
	for i := range netnses {
		start := time.Now()
		if _, err := cni.AddNetworkList(ctx, list, rt(i)); err != nil {
			fail(fmt.Errorf("ADD pod %d: %w", i, err))
		}
		adds = append(adds, ms(time.Since(start)))
	}
	for i := range netnses {
		start := time.Now()
		if err := cni.DelNetworkList(ctx, list, rt(i)); err != nil {
			fail(fmt.Errorf("DEL pod %d: %w", i, err))
		}
		dels = append(dels, ms(time.Since(start)))
	}
	emit(map[string]any{"add_ms": adds, "del_ms": dels})
}

func run(exe string, env []string, stdin []byte) (time.Duration, int64) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		fail(fmt.Errorf("%s: %v: %s %s", exe, err, out.String(), errb.String()))
	}
	elapsed := time.Since(start)
	return elapsed, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: shimbench pods|version|rss ..."))
	}
	switch os.Args[1] {
	case "pods":
		pods(os.Args[2], os.Args[3], os.Args[4:])
	case "version":
		n, _ := strconv.Atoi(os.Args[3])
		stdin := []byte(`{"cniVersion":"1.0.0"}`)
		run(os.Args[2], []string{"CNI_COMMAND=VERSION"}, stdin) // warm-up
		var out []float64
		for i := 0; i < n; i++ {
			d, _ := run(os.Args[2], []string{"CNI_COMMAND=VERSION"}, stdin)
			out = append(out, ms(d))
		}
		emit(map[string]any{"ms": out})
	case "rss":
		stdin, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail(err)
		}
		env := []string{"CNI_CONTAINERID=" + os.Args[5], "CNI_NETNS=" + os.Args[4],
			"CNI_IFNAME=eth0"}
		_, add := run(os.Args[2], append(env, "CNI_COMMAND=ADD"), stdin)
		_, del := run(os.Args[2], append(env, "CNI_COMMAND=DEL"), stdin)
		emit(map[string]any{"add_kb": add, "del_kb": del})
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
