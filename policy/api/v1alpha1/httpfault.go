package v1alpha1

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// HTTPDirection says whose requests an HTTP fault reads.
// +kubebuilder:validation:Enum=inbound;outbound
type HTTPDirection string

const (
	// HTTPInbound faults requests the pod serves, on one container port.
	HTTPInbound HTTPDirection = "inbound"
	// HTTPOutbound faults requests the pod makes to the destinations in to.
	HTTPOutbound HTTPDirection = "outbound"
)

// HTTPFault is one HTTP or gRPC fault: which requests, and what happens to
// them. The first rule that matches a request decides it.
type HTTPFault struct {
	Direction HTTPDirection `json:"direction"`
	// Port is the container port whose requests are read (inbound only).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// To are the destinations whose requests are read (outbound only), in
	// the form of network rules' to: "payments.shop.svc:80", "10.0.0.0/8".
	// +optional
	To []string `json:"to,omitempty"`
	// Match narrows the rule to some requests; absent matches all.
	// +optional
	Match *HTTPMatch `json:"match,omitempty"`
	// +optional
	Abort *HTTPAbort `json:"abort,omitempty"`
	// +optional
	Delay *HTTPDelay `json:"delay,omitempty"`
}

// HTTPMatch selects requests; every field given must match.
type HTTPMatch struct {
	// Method such as GET or POST.
	// +optional
	Method string `json:"method,omitempty"`
	// Path: exact ("/checkout"), a prefix ("/checkout*") or a glob
	// ("/api/*/orders").
	// +optional
	Path string `json:"path,omitempty"`
	// Host is the request's Host (authority) without its port.
	// +optional
	Host string `json:"host,omitempty"`
	// Headers must all be present with exactly these values.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
}

// HTTPAbort answers matching requests itself instead of forwarding them.
type HTTPAbort struct {
	// Status is the HTTP status; 503 when only grpc is given.
	// +optional
	// +kubebuilder:validation:Minimum=200
	// +kubebuilder:validation:Maximum=599
	Status int32 `json:"status,omitempty"`
	// Body is sent with status; the status text when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Body string `json:"body,omitempty"`
	// GRPC answers gRPC requests with this status instead (a trailers-only
	// response); other requests get status.
	// +optional
	GRPC *GRPCAbort `json:"grpc,omitempty"`
	// Percent of matching requests aborted; default 100%.
	// +optional
	Percent string `json:"percent,omitempty"`
}

// GRPCAbort is the gRPC status of an abort.
type GRPCAbort struct {
	// Code is a gRPC status code name such as UNAVAILABLE.
	Code string `json:"code"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
}

// HTTPDelay holds matching requests before they are forwarded.
type HTTPDelay struct {
	Fixed string `json:"fixed"`
	// Percent of matching requests delayed; default 100%.
	// +optional
	Percent string `json:"percent,omitempty"`
}

// GRPCCodes are gRPC's status codes by name, in number order.
var GRPCCodes = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

const (
	maxHTTPRules   = 16
	maxHTTPHeaders = 16
	formHTTPPath   = `a path such as "/checkout", a prefix such as "/checkout*" or a glob such as "/api/*/orders"`
	formHTTPTarget = `a TCP destination such as "payments.shop.svc:80" or "10.0.0.0/8"`
)

func validateHTTP(p *field.Path, rules []HTTPFault) field.ErrorList {
	if len(rules) > maxHTTPRules {
		return field.ErrorList{field.TooMany(p, len(rules), maxHTTPRules)}
	}
	var errs field.ErrorList
	for i := range rules {
		errs = append(errs, rules[i].validate(p.Index(i))...)
	}
	return errs
}

func (h *HTTPFault) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch h.Direction {
	case HTTPInbound:
		if h.Port == 0 {
			errs = append(errs, field.Required(p.Child("port"), "the container port whose requests are faulted, 1-65535"))
		}
		if len(h.To) > 0 {
			errs = append(errs, field.Forbidden(p.Child("to"), "inbound rules read one container port: use port"))
		}
	case HTTPOutbound:
		if h.Port != 0 {
			errs = append(errs, field.Forbidden(p.Child("port"), "outbound rules name their destinations: use to, e.g. \"payments.shop.svc:80\""))
		}
		if len(h.To) == 0 {
			errs = append(errs, field.Required(p.Child("to"), formHTTPTarget+" (at least one)"))
		}
	case "":
		errs = append(errs, field.Required(p.Child("direction"), "one of inbound, outbound"))
	default:
		errs = append(errs, field.NotSupported(p.Child("direction"), h.Direction, []HTTPDirection{HTTPInbound, HTTPOutbound}))
	}
	if h.Port < 0 || h.Port > 65535 {
		errs = append(errs, field.Invalid(p.Child("port"), h.Port, "want a port from 1 to 65535"))
	}
	errs = append(errs, validateTargets(p.Child("to"), h.To)...)
	for i, s := range h.To {
		if t, err := ParseTarget(s); err == nil && t.Protocol == "udp" {
			errs = append(errs, field.Invalid(p.Child("to").Index(i), s, "HTTP runs over TCP: want "+formHTTPTarget))
		}
	}
	if h.Match != nil {
		errs = append(errs, h.Match.validate(p.Child("match"))...)
	}
	if h.Abort == nil && h.Delay == nil {
		errs = append(errs, field.Required(p, "at least one of abort, delay"))
	}
	if h.Abort != nil {
		errs = append(errs, h.Abort.validate(p.Child("abort"))...)
	}
	if h.Delay != nil {
		errs = append(errs, h.Delay.validate(p.Child("delay"))...)
	}
	return errs
}

func (m *HTTPMatch) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Method != "" && (len(m.Method) > 16 || strings.IndexFunc(m.Method, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0) {
		errs = append(errs, field.Invalid(p.Child("method"), m.Method, "want an upper-case HTTP method such as GET or POST"))
	}
	if m.Path != "" {
		if _, err := path.Match(m.Path, ""); err != nil || !strings.HasPrefix(m.Path, "/") || len(m.Path) > 1024 {
			errs = append(errs, field.Invalid(p.Child("path"), m.Path, "want "+formHTTPPath))
		}
	}
	if m.Host != "" {
		if e := validation.IsDNS1123Subdomain(strings.ToLower(m.Host)); len(e) > 0 {
			errs = append(errs, field.Invalid(p.Child("host"), m.Host, "want a host name without a port, such as payments.shop.svc"))
		}
	}
	if len(m.Headers) > maxHTTPHeaders {
		errs = append(errs, field.TooMany(p.Child("headers"), len(m.Headers), maxHTTPHeaders))
	}
	keys := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(validation.IsHTTPHeaderName(k)) > 0 {
			errs = append(errs, field.Invalid(p.Child("headers").Key(k), k, "want a header name such as x-canary"))
		}
		if v := m.Headers[k]; len(v) > 256 || strings.ContainsAny(v, "\r\n\x00") {
			errs = append(errs, field.Invalid(p.Child("headers").Key(k), v, "want a value of at most 256 characters on one line"))
		}
	}
	return errs
}

func (a *HTTPAbort) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if a.Status == 0 && a.GRPC == nil {
		errs = append(errs, field.Required(p.Child("status"), "an HTTP status from 200 to 599, or grpc: {code: UNAVAILABLE}"))
	}
	if a.Status != 0 && (a.Status < 200 || a.Status > 599) {
		errs = append(errs, field.Invalid(p.Child("status"), a.Status, "want an HTTP status from 200 to 599"))
	}
	if len(a.Body) > 1024 {
		errs = append(errs, field.TooLong(p.Child("body"), field.OmitValueType{}, 1024))
	}
	if g := a.GRPC; g != nil {
		if !slices.Contains(GRPCCodes, g.Code) {
			errs = append(errs, field.NotSupported(p.Child("grpc", "code"), g.Code, GRPCCodes))
		}
		if len(g.Message) > 256 || strings.ContainsAny(g.Message, "\r\n\x00") {
			errs = append(errs, field.Invalid(p.Child("grpc", "message"), g.Message, "want at most 256 characters on one line"))
		}
	}
	errs = append(errs, validateSharePercent(p.Child("percent"), a.Percent, "abort")...)
	return errs
}

func (d *HTTPDelay) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d.Fixed == "" {
		errs = append(errs, field.Required(p.Child("fixed"), formDuration))
	} else if v, err := ParseDuration(d.Fixed); err != nil || v <= 0 || v > MaxDelay {
		errs = append(errs, field.Invalid(p.Child("fixed"), d.Fixed, fmt.Sprintf("want %s, more than 0 and at most %s", formDuration, MaxDelay)))
	}
	errs = append(errs, validateSharePercent(p.Child("percent"), d.Percent, "delay")...)
	return errs
}

func validateSharePercent(p *field.Path, v, what string) field.ErrorList {
	if v == "" {
		return nil
	}
	pct, err := ParsePercent(v)
	if err == nil && pct == 0 {
		err = fmt.Errorf("want more than 0%% (omit %s to disable it)", what)
	}
	if err != nil {
		return field.ErrorList{field.Invalid(p, v, err.Error())}
	}
	return nil
}

// normalize fills defaults: 100% of matching requests, 503 beside a gRPC
// status, canonical destinations.
func (h *HTTPFault) normalize() {
	h.To = canonicalTargets(h.To)
	if a := h.Abort; a != nil {
		if a.Percent == "" {
			a.Percent = "100%"
		}
		if a.Status == 0 {
			a.Status = http.StatusServiceUnavailable
		}
	}
	if d := h.Delay; d != nil && d.Percent == "" {
		d.Percent = "100%"
	}
	if m := h.Match; m != nil {
		m.Host = strings.ToLower(m.Host)
	}
}
