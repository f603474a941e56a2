package sidecar

import (
	"github.com/prometheus/client_golang/prometheus"
)

// httpCollector exports the proxy's counts at scrape time: per rule, the
// requests it matched, aborted and delayed; per protocol, the connections
// the proxy read.
type httpCollector struct {
	a                         *Agent
	matched, aborted, delayed *prometheus.Desc
	connections, limited      *prometheus.Desc
}

func newHTTPCollector(a *Agent) *httpCollector {
	rule := []string{"rule"}
	return &httpCollector{a: a,
		matched: prometheus.NewDesc("faultline_agent_http_matched_requests_total", "Requests an http rule matched (the first matching rule decides).", rule, nil),
		aborted: prometheus.NewDesc("faultline_agent_http_aborted_requests_total", "Requests an http rule answered itself with its status.", rule, nil),
		delayed: prometheus.NewDesc("faultline_agent_http_delayed_requests_total", "Requests an http rule held before forwarding.", rule, nil),
		connections: prometheus.NewDesc("faultline_agent_http_connections_total",
			"Connections the HTTP proxy was handed, by what they spoke (other: not HTTP, passed through untouched).", []string{"protocol"}, nil),
		limited: prometheus.NewDesc("faultline_agent_http_connections_limited_total",
			"Connections at the proxy's connection limit: the longest-idle one closed to make room (evicted), a new one passed through unread and without faults with none idle (bypassed), or closed past that too (refused).", []string{"outcome"}, nil),
	}
}

func (c *httpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.matched
	ch <- c.aborted
	ch <- c.delayed
	ch <- c.connections
	ch <- c.limited
}

func (c *httpCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.a.httpDriver()
	if h == nil {
		return
	}
	s := h.status()
	for _, r := range s.Rules {
		ch <- prometheus.MustNewConstMetric(c.matched, prometheus.CounterValue, float64(r.Matched), r.Rule)
		ch <- prometheus.MustNewConstMetric(c.aborted, prometheus.CounterValue, float64(r.Aborted), r.Rule)
		ch <- prometheus.MustNewConstMetric(c.delayed, prometheus.CounterValue, float64(r.Delayed), r.Rule)
	}
	for proto, n := range map[string]uint64{"http1": s.HTTP1, "h2c": s.H2C, "other": s.PassedOther} {
		ch <- prometheus.MustNewConstMetric(c.connections, prometheus.CounterValue, float64(n), proto)
	}
	ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(s.Evicted), "evicted")
	ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(s.Bypassed), "bypassed")
	ch <- prometheus.MustNewConstMetric(c.limited, prometheus.CounterValue, float64(s.Refused), "refused")
}
