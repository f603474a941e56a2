package httpfault

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A real gRPC client and server (google.golang.org/grpc, h2c) through the
// proxy: the client sees the injected code and message, a delayed call
// takes its delay, and a server stream keeps streaming.
func TestGRPCClientsSeeTheInjectedStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("cart", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	unavailable := 14
	abort := &Rule{Path: "/grpc.health.v1.Health/Check", Headers: map[string]string{"x-fault": "abort"},
		Abort: &Abort{Status: 503, GRPCCode: &unavailable, Message: "injected by faultline"}}
	slow := &Rule{Path: "/grpc.health.v1.Health/Check", Headers: map[string]string{"x-fault": "delay"}, Delay: 200 * time.Millisecond}
	addr := through(t, &Proxy{Rules: []*Rule{abort, slow}}, ln.Addr().String())
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)
	call := func(fault string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := client.Check(metadataCtx(ctx, fault), &healthpb.HealthCheckRequest{Service: "cart"})
		return time.Since(start), err
	}
	if _, err := call("abort"); status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "injected by faultline" {
		t.Errorf("aborted call: %v, want UNAVAILABLE: injected by faultline", err)
	}
	if _, err := call("none"); err != nil {
		t.Errorf("an unmatched call: %v, want it forwarded", err)
	}
	var fast, delayed time.Duration
	for i := 0; i < 5; i++ {
		d1, err1 := call("none")
		d2, err2 := call("delay")
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		fast, delayed = max(fast, d1), max(delayed, d2)
	}
	if delayed < 200*time.Millisecond || delayed > 260*time.Millisecond || fast > 50*time.Millisecond {
		t.Errorf("slowest delayed call %s, slowest plain call %s: want 200ms more on the delayed ones", delayed, fast)
	}
	// A server stream: Watch sends the status now and each change.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "cart"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING} {
		m, err := w.Recv()
		if err != nil || m.Status != want {
			t.Fatalf("stream: %v %v, want %v", m, err, want)
		}
		hs.SetServingStatus("cart", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	if abort.Aborted.Load() != 1 || slow.Delayed.Load() != 5 {
		t.Errorf("counts: aborted %d, delayed %d; want 1 and 5", abort.Aborted.Load(), slow.Delayed.Load())
	}
}

func metadataCtx(ctx context.Context, fault string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-fault", fault)
}
