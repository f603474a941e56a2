package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline-dev/faultline/policy"
)

// Result label values of faultline_admission_requests_total.
const (
	ResultInjected = "injected"
	ResultSkipped  = "skipped"
	ResultError    = "error"
)

// Metrics are the webhook's Prometheus series.
type Metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

// NewMetrics registers the admission series with reg (controller-runtime's
// metrics.Registry in the binary, a fresh registry in tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_admission_requests_total",
			Help: "Pod admission requests by result (injected, skipped, error) and reason code.",
		}, []string{"result", "reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_admission_duration_seconds",
			Help:    "Time to decide and build the patch for one pod admission.",
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

func (m *Metrics) observe(result string, code policy.Code, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(result, string(code)).Inc()
	m.duration.Observe(d.Seconds())
}
