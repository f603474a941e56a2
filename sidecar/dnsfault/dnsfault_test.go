package dnsfault

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func TestMatches(t *testing.T) {
	r, err := New(&v1alpha1.DNSFault{Failure: "servfail", Hosts: []string{"*.db.svc.cluster.local", "Redis.cache"}})
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

// Any process in the pod writes what the queue hands the agent: no packet
// may crash it, and what is not a DNS query goes on untouched.
func FuzzIntercept(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("pg.db.svc.cluster.local.", dns.TypeA)
	body, _ := q.Pack()
	pkt := append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0, 53, 0, 0, 0, 0}, body...)
	f.Add(pkt)
	f.Add([]byte{0x45})
	f.Add([]byte{0x4f, 0, 0, 0, 0, 0, 0, 0, 64, 17})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r, _ := New(&v1alpha1.DNSFault{Failure: v1alpha1.DNSTimeout, Hosts: []string{"*.db.svc.cluster.local"}})
		if _, err := parseQuery(pkt); err != nil && r.intercept(pkt) {
			t.Fatalf("a packet that is not a DNS query was dropped: %x", pkt)
		}
	})
}

func TestAMatchingQueryIsFailedAndOthersPass(t *testing.T) {
	r, _ := New(&v1alpha1.DNSFault{Failure: v1alpha1.DNSTimeout, Hosts: []string{"*.db.svc.cluster.local"}})
	mk := func(name string) []byte {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		body, _ := q.Pack()
		return append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0, 53, 0, 0, 0, 0}, body...)
	}
	if !r.intercept(mk("pg.db.svc.cluster.local.")) {
		t.Error("a matching query at 100% passed")
	}
	if r.intercept(mk("api.shop.svc.cluster.local.")) {
		t.Error("another name was failed")
	}
	if r.Failed.Load() != 1 || r.Forwarded.Load() != 1 {
		t.Errorf("failed %d, forwarded %d", r.Failed.Load(), r.Forwarded.Load())
	}
}
