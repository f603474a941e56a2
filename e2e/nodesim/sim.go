package nodesim

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Simulator runs the pods of Namespaces.
type Simulator struct {
	Client     client.Client
	Namespaces []string
	// Images maps an image to the local binary standing for its
	// entrypoint, plus arguments put before the container's (e.g. where
	// the agent finds the time shim).
	Images  map[string][]string
	Network *Network
	// Dir holds the pods' volumes and logs.
	Dir string

	mu   sync.Mutex
	pods map[types.UID]*Pod
}

// Pod is a running simulated pod.
type Pod struct {
	Name, Namespace string
	NetNS, IP       string
	dir             string
	annotations     string // the downward API file, if any
	mu              sync.Mutex
	procs           []*container
	stopped         bool
}

type container struct {
	name      string
	cur       *process // guarded by the pod's mu
	done      chan struct{}
	sidecar   bool
	noRestart bool
	restart   func() (*process, error)
}

// process is one run of a container; exited closes after Wait, and state
// is readable from then on.
type process struct {
	pid    int
	exited chan struct{}
	state  *os.ProcessState
}

// Start watches pods until ctx ends, then stops every pod it runs.
func (s *Simulator) Start(ctx context.Context, informers ctrlcache.Informers) error {
	s.pods = map[types.UID]*Pod{}
	inf, err := informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.sync(ctx, o) },
		UpdateFunc: func(_, o any) { s.sync(ctx, o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				s.remove(p.UID)
			}
		},
	})
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		uids := slices.Collect(maps.Keys(s.pods))
		s.mu.Unlock()
		for _, u := range uids {
			s.remove(u)
		}
	}()
	return err
}

// Get returns the running pod namespace/name, if any.
func (s *Simulator) Get(namespace, name string) *Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pods {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

func (s *Simulator) sync(ctx context.Context, o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok || !slices.Contains(s.Namespaces, pod.Namespace) {
		return
	}
	if pod.DeletionTimestamp != nil {
		s.remove(pod.UID)
		return
	}
	s.mu.Lock()
	p, running := s.pods[pod.UID]
	if !running {
		p = &Pod{Name: pod.Name, Namespace: pod.Namespace}
		s.pods[pod.UID] = p
	}
	s.mu.Unlock()
	if running {
		p.writeAnnotations(pod.Annotations)
		return
	}
	go func() {
		if err := s.run(ctx, p, pod.DeepCopy()); err != nil {
			s.report(ctx, pod, corev1.PodFailed, p.IP, err.Error())
		}
	}()
}

// run starts a pod: network, volumes, init containers, containers, status.
func (s *Simulator) run(ctx context.Context, p *Pod, pod *corev1.Pod) error {
	ns, ip, err := s.Network.AddPod()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.NetNS, p.IP = ns, ip
	p.dir = filepath.Join(s.Dir, string(pod.UID))
	p.mu.Unlock()
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		d := filepath.Join(p.dir, "volumes", v.Name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		vols[v.Name] = d
		if v.DownwardAPI != nil {
			for _, it := range v.DownwardAPI.Items {
				if it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.annotations" {
					p.annotations = filepath.Join(d, it.Path)
				}
			}
		}
	}
	p.writeAnnotations(pod.Annotations)
	for _, c := range pod.Spec.InitContainers {
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		ct, err := s.start(p, pod, c, vols, sidecar)
		if err != nil {
			return fmt.Errorf("init container %s: %w", c.Name, err)
		}
		if sidecar {
			continue
		}
		<-ct.done
		if st := ct.cur.state; st == nil || !st.Success() {
			return fmt.Errorf("init container %s failed: %v (log %s)", c.Name, st, s.logPath(p, c.Name))
		}
	}
	for _, c := range pod.Spec.Containers {
		if _, err := s.start(p, pod, c, vols, false); err != nil {
			return fmt.Errorf("container %s: %w", c.Name, err)
		}
	}
	s.report(ctx, pod, corev1.PodRunning, ip, "")
	return nil
}

func (s *Simulator) logPath(p *Pod, name string) string { return filepath.Join(p.dir, name+".log") }

// start runs one container in the pod's network namespace.
func (s *Simulator) start(p *Pod, pod *corev1.Pod, c corev1.Container, vols map[string]string, sidecar bool) (*container, error) {
	entry, ok := s.Images[c.Image]
	if !ok {
		return nil, fmt.Errorf("image %q is not mapped to a local binary", c.Image)
	}
	argv := slices.Clone(entry)
	if len(c.Command) > 0 {
		argv = slices.Clone(c.Command)
	}
	argv = append(argv, c.Args...)
	rewrite := func(v string) string {
		for _, m := range c.VolumeMounts {
			if d, ok := vols[m.Name]; ok && strings.Contains(v, m.MountPath) {
				v = strings.ReplaceAll(v, m.MountPath, d)
			}
		}
		return v
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			v = map[string]string{"metadata.name": pod.Name, "metadata.namespace": pod.Namespace, "status.podIP": p.IP}[e.ValueFrom.FieldRef.FieldPath]
		}
		env = append(env, e.Name+"="+rewrite(v))
	}
	for i := range argv {
		argv[i] = rewrite(argv[i])
	}
	mk := func() (*process, error) {
		log, err := os.OpenFile(s.logPath(p, c.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("ip", append([]string{"netns", "exec", p.NetNS}, argv...)...)
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, p.dir, log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			log.Close()
			return nil, err
		}
		pr := &process{pid: cmd.Process.Pid, exited: make(chan struct{})}
		go func() {
			_ = cmd.Wait()
			log.Close()
			pr.state = cmd.ProcessState
			close(pr.exited)
		}()
		return pr, nil
	}
	first, err := mk()
	if err != nil {
		return nil, err
	}
	ct := &container{name: c.Name, cur: first, done: make(chan struct{}), sidecar: sidecar, restart: mk}
	go s.supervise(p, ct)
	p.mu.Lock()
	p.procs = append(p.procs, ct)
	p.mu.Unlock()
	return ct, nil
}

// supervise restarts a native sidecar that dies, as the kubelet does.
func (s *Simulator) supervise(p *Pod, ct *container) {
	for {
		p.mu.Lock()
		cur := ct.cur
		p.mu.Unlock()
		<-cur.exited
		p.mu.Lock()
		stopped := p.stopped || ct.noRestart
		p.mu.Unlock()
		if !ct.sidecar || stopped {
			close(ct.done)
			return
		}
		next, err := ct.restart()
		if err != nil {
			close(ct.done)
			return
		}
		p.mu.Lock()
		ct.cur = next
		p.mu.Unlock()
	}
}

// Processes returns the current pid of each container, by name.
func (p *Pod) Processes() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for _, c := range p.procs {
		select {
		case <-c.cur.exited:
		default:
			m[c.name] = c.cur.pid
		}
	}
	return m
}

// Kill signals a container's process. A native sidecar is restarted when it
// dies, unless restart is false; the returned channel closes when the
// container is over for good.
func (p *Pod) Kill(name string, sig syscall.Signal, restart bool) (int, <-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.procs {
		if c.name == name {
			c.noRestart = !restart
			return c.cur.pid, c.done, syscall.Kill(c.cur.pid, sig)
		}
	}
	return 0, nil, fmt.Errorf("pod %s/%s has no container %s", p.Namespace, p.Name, name)
}

// writeAnnotations rewrites the downward API file atomically, in the
// kubelet's format (key="quoted value", sorted).
func (p *Pod) writeAnnotations(a map[string]string) {
	if p.annotations == "" {
		return
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(a)) {
		fmt.Fprintf(&b, "%s=%q\n", k, a[k])
	}
	tmp := p.annotations + ".tmp"
	if os.WriteFile(tmp, []byte(b.String()), 0o644) == nil {
		_ = os.Rename(tmp, p.annotations)
	}
}

func (s *Simulator) remove(uid types.UID) {
	s.mu.Lock()
	p, ok := s.pods[uid]
	delete(s.pods, uid)
	s.mu.Unlock()
	if !ok {
		return
	}
	p.mu.Lock()
	p.stopped = true
	procs := slices.Clone(p.procs)
	p.mu.Unlock()
	// Containers first, then sidecars (reverse start order), as the kubelet.
	slices.Reverse(procs)
	for _, c := range procs {
		// A sidecar restarted just before stopped was set is the one to
		// signal: read the current run under the lock.
		p.mu.Lock()
		pid := c.cur.pid
		p.mu.Unlock()
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			p.mu.Lock()
			pid = c.cur.pid
			p.mu.Unlock()
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-c.done
		}
	}
	if p.NetNS != "" {
		_ = s.Network.RemovePod(p.NetNS)
	}
}

// report writes phase and IP to the pod's status.
func (s *Simulator) report(ctx context.Context, pod *corev1.Pod, phase corev1.PodPhase, ip, msg string) {
	var cur corev1.Pod
	if err := s.Client.Get(ctx, client.ObjectKeyFromObject(pod), &cur); err != nil {
		return
	}
	cur.Status.Phase, cur.Status.PodIP, cur.Status.Message = phase, ip, msg
	if ip != "" {
		cur.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	ready := corev1.ConditionFalse
	if phase == corev1.PodRunning {
		ready = corev1.ConditionTrue
	}
	cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()}}
	_ = s.Client.Status().Update(ctx, &cur)
}
