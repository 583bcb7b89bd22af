// Command kapi is sluice's test-only Kubernetes control plane: an embedded
// etcd and an in-process kube-apiserver (no controllers, no scheduler, no
// kubelet), with kubectl bundled. scripts/check-apiserver.sh applies the
// rendered chart to it, so every object passes the real server's validation.
// Built by scripts/deps.sh from the Go module proxy (k8s.io/kubernetes with
// its staging modules replaced by their published versions, see go.mod).
//
//	kapi serve -dir DIR [-port N] [-token T] [-- extra kube-apiserver flags]
//	kapi kubectl ARGS...
//
// "serve" generates a service-account key and a static admin token in DIR,
// starts etcd on free loopback ports, writes DIR/kubeconfig and then runs
// kube-apiserver until SIGINT/SIGTERM.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kapi serve -dir DIR [-port N] [-token T] [-- apiserver flags] | kapi kubectl ARGS...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "kubectl":
		os.Args = append([]string{"kubectl"}, os.Args[2:]...)
		command := kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		fmt.Fprintf(os.Stderr, "kapi: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeSAKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return os.WriteFile(path, b, 0o600)
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (required)")
	port := fs.Int("port", 0, "apiserver secure port on 127.0.0.1 (0 = pick a free one)")
	token := fs.String("token", "", "static admin bearer token (empty = random)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	extra := fs.Args() // everything after "--"
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "kapi serve: -dir is required")
		return 2
	}
	d, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			fmt.Fprintln(os.Stderr, "token:", err)
			return 1
		}
		*token = hex.EncodeToString(b)
	}
	saKey := filepath.Join(d, "sa.key")
	tokens := filepath.Join(d, "tokens.csv")
	if err := writeSAKey(saKey); err != nil {
		fmt.Fprintln(os.Stderr, "sa key:", err)
		return 1
	}
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", *token)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// etcd
	cport, err1 := freePort()
	pport, err2 := freePort()
	if *port == 0 {
		*port, err = freePort()
	}
	if err1 != nil || err2 != nil || err != nil {
		fmt.Fprintln(os.Stderr, "free port:", err1, err2, err)
		return 1
	}
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", cport))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", pport))
	cfg := embed.NewConfig()
	cfg.Name = "kapi"
	cfg.Dir = filepath.Join(d, "etcd")
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = true // test data, thrown away
	t0 := time.Now()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}
	fmt.Fprintf(os.Stderr, "kapi: etcd ready on %s after %s\n", cu, time.Since(t0).Round(time.Millisecond))

	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kapi
  cluster:
    server: https://127.0.0.1:%d
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: kapi
  context: {cluster: kapi, user: admin, namespace: default}
current-context: kapi
`, *port, *token)
	if err := os.WriteFile(filepath.Join(d, "kubeconfig"), []byte(kubeconfig), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The token first: a reader that sees the port finds the token too.
	if err := os.WriteFile(filepath.Join(d, "token"), []byte(*token+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(d, "port"), []byte(fmt.Sprintf("%d\n", *port)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	apiArgs := []string{
		"--etcd-servers=" + cu.String(),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", *port),
		"--cert-dir=" + filepath.Join(d, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		// The "kubernetes" Service endpoints reconciler rejects a loopback
		// advertise address; nothing in-cluster needs it here.
		"--endpoint-reconciler-type=none",
	}
	apiArgs = append(apiArgs, extra...)
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(apiArgs)
	return cli.Run(cmd)
}
