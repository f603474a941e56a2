package v1alpha1

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Allowed forms, quoted verbatim in error messages so users see one wording.
const (
	formDuration    = "a duration such as 100ms, 1.5s or 2m"
	formSignedDur   = "a signed duration such as +5m or -30s"
	formPercent     = "a percentage such as 5% or 0.1%"
	formBandwidth   = "a rate such as 512kbit, 1Mbit or 1Gbit (bits per second)"
	formDrift       = "a signed rate in ppm such as 200ppm or -50ppm"
	formDirection   = "one of egress, ingress, both"
	formDNSFailure  = "one of servfail, nxdomain, timeout"
	formTarget      = `a destination such as "10.0.0.0/8", "10.1.2.3", "postgres.db.svc:5432" or ":53/udp"`
	formDNSHostname = `a DNS name such as "db.svc.cluster.local" or "*.db.svc.cluster.local"`
)

// Physical sanity bounds. Policies narrow these further; the parser only
// refuses values no chaos experiment can mean.
const (
	MaxDelay       = time.Minute
	MaxClockOffset = 365 * 24 * time.Hour
	MaxDriftPPM    = 500000 // a clock at half or one and a half speed
	MinBandwidth   = 1000   // bit/s
	MaxBandwidth   = 100e9  // bit/s
	MaxScheduleLen = 7 * 24 * time.Hour
)

// ParseDuration parses a non-negative Go duration ("100ms", "1.5s").
func ParseDuration(s string) (time.Duration, error) {
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("want %s without a sign", formDuration)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want %s", formDuration)
	}
	return d, nil
}

// ParseSignedDuration parses "+5m", "-30s" or "5m".
func ParseSignedDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want %s", formSignedDur)
	}
	return d, nil
}

// ParsePercent parses "5%" or "0.1%" into a fraction in [0, 1].
func ParsePercent(s string) (float64, error) {
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return 0, fmt.Errorf("want %s (the %% sign is required)", formPercent)
	}
	v, err := parseDecimal(num)
	if err != nil {
		return 0, fmt.Errorf("want %s", formPercent)
	}
	if v < 0 || v > 100 {
		return 0, fmt.Errorf("want %s between 0%% and 100%%", formPercent)
	}
	return v / 100, nil
}

// bandwidthUnits are tc's bit-rate units. Byte units ("kbps") are refused
// on purpose: "Mbps" means megabits to most people and megabytes to tc.
var bandwidthUnits = []struct {
	suffix string
	mult   float64
}{
	{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
}

// ParseBandwidth parses "1Mbit" into bits per second.
func ParseBandwidth(s string) (uint64, error) {
	lower := strings.ToLower(s)
	for _, u := range bandwidthUnits {
		num, ok := strings.CutSuffix(lower, u.suffix)
		if !ok {
			continue
		}
		v, err := parseDecimal(num)
		if err != nil {
			break
		}
		bps := v * u.mult
		if bps < MinBandwidth || bps > MaxBandwidth {
			return 0, fmt.Errorf("want %s between 1kbit and 100Gbit", formBandwidth)
		}
		return uint64(bps), nil
	}
	return 0, fmt.Errorf("want %s", formBandwidth)
}

// ParseDrift parses "200ppm" or "-50ppm" into parts per million.
func ParseDrift(s string) (float64, error) {
	num, ok := strings.CutSuffix(s, "ppm")
	if !ok {
		return 0, fmt.Errorf("want %s", formDrift)
	}
	num = strings.TrimPrefix(num, "+")
	neg := false
	if rest, ok := strings.CutPrefix(num, "-"); ok {
		neg, num = true, rest
	}
	v, err := parseDecimal(num)
	if err != nil {
		return 0, fmt.Errorf("want %s", formDrift)
	}
	if neg {
		v = -v
	}
	if math.Abs(v) > MaxDriftPPM {
		return 0, fmt.Errorf("want %s within ±%dppm", formDrift, MaxDriftPPM)
	}
	return v, nil
}

// parseDecimal accepts plain decimals only: no signs, exponents, hex, Inf
// or NaN, which strconv.ParseFloat would otherwise let through.
func parseDecimal(s string) (float64, error) {
	if s == "" || len(s) > 32 {
		return 0, strconv.ErrSyntax
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !dot:
			dot = true
		default:
			return 0, strconv.ErrSyntax
		}
	}
	if s == "." {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(s, 64)
}
