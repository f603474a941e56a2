package sidecar

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestProbeSources(t *testing.T) {
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0100D60A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t0000D60A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	dir := t.TempDir()
	withRoute := filepath.Join(dir, "route")
	if err := os.WriteFile(withRoute, []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hostIP, routes string
		want                 []string
	}{
		{"the node's address and the default gateway are both probe sources", "10.213.0.2", withRoute, []string{"10.213.0.2", "10.214.0.1"}},
		{"without the node's address the gateway alone is", "", withRoute, []string{"10.214.0.1"}},
		{"a garbled node address is ignored, not trusted", "10.213.0", withRoute, []string{"10.214.0.1"}},
		{"with neither known there are none (probe ports exempt for all)", "", filepath.Join(dir, "missing"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range ProbeSources(tc.hostIP, tc.routes) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
