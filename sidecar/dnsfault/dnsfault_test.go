package dnsfault

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func TestMatches(t *testing.T) {
	r, err := New(&v1alpha1.DNSFault{Failure: "servfail", Hosts: []string{"*.db.svc.cluster.local", "Redis.cache"}}, "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		want bool
	}{
		{"pg.db.svc.cluster.local.", true},
		{"a.b.db.svc.cluster.local", true},
		{"db.svc.cluster.local", false}, // the wildcard needs a label in front
		{"xdb.svc.cluster.local", false},
		{"REDIS.cache.", true},
		{"redis.cache.evil", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := r.Matches(c.name); got != c.want {
				t.Fatalf("Matches(%q) = %v, want %v", c.name, got, c.want)
			}
		})
	}
}

func TestUpstreamReadsTheFirstNameserver(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	_ = os.WriteFile(p, []byte("search svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n"), 0o644)
	if got, err := Upstream(p); err != nil || got != "10.96.0.10:53" {
		t.Fatalf("Upstream = %q, %v", got, err)
	}
	_ = os.WriteFile(p, []byte("search x\n"), 0o644)
	if _, err := Upstream(p); err == nil {
		t.Fatal("a resolv.conf without nameserver must be an error")
	}
}
