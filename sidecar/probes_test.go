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
	// As the test node's dual-stack pods have it: a link route and the
	// default route through the bridge's IPv6 address.
	route6 := "fd000214000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000214000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
	withRoute, withRoute6, missing := filepath.Join(dir, "route"), filepath.Join(dir, "ipv6_route"), filepath.Join(dir, "missing")
	if err := os.WriteFile(withRoute, []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(withRoute6, []byte(route6), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hostIP, routes, routes6 string
		want                          []string
	}{
		{"the node's address and the default gateway are both probe sources", "10.213.0.2", withRoute, missing, []string{"10.213.0.2", "10.214.0.1"}},
		{"a dual-stack pod's IPv6 gateway is one too", "10.213.0.2", withRoute, withRoute6, []string{"10.213.0.2", "10.214.0.1", "fd00:214::1"}},
		{"without the node's address the gateway alone is", "", withRoute, missing, []string{"10.214.0.1"}},
		{"a garbled node address is ignored, not trusted", "10.213.0", withRoute, missing, []string{"10.214.0.1"}},
		{"with neither known there are none (probe ports exempt for all)", "", missing, missing, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range ProbeSources(tc.hostIP, tc.routes, tc.routes6) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
