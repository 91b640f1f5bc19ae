package oracle

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	scalefake "k8s.io/client-go/scale/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/kubernetes/pkg/controller/podautoscaler"
	metricsclient "k8s.io/kubernetes/pkg/controller/podautoscaler/metrics"
	"k8s.io/utils/ptr"
)

// kube-controller-manager's defaults for the HPA controller
// (--horizontal-pod-autoscaler-sync-period, -tolerance,
// -downscale-stabilization, -cpu-initialization-period,
// -initial-readiness-delay).
const (
	defaultSyncPeriod      = 15.0
	defaultTolerance       = 0.1
	defaultDownscaleWindow = 300.0
	cpuInitialization      = 5 * time.Minute
	initialReadinessDelay  = 30 * time.Second
)

const podLabel = "infergate-oracle"

// pod is one pod of the replay, in trace seconds.
type pod struct {
	name    string
	created float64
	readyAt float64
}

// metricSource is how the harness answers for one of the HPA's metrics.
type metricSource struct {
	series *series
	// A per-pod amount (Pods, Resource, and External or Object with an
	// AverageValue target): the trace's value times the recorded replicas
	// is the load, shared by the Ready pods. Otherwise the value is a total
	// replayed as recorded.
	perPod bool
	// A Resource utilization: each pod's share is a percent of its 1-core
	// request.
	utilization bool
}

// cluster is what the harness plays around the controller: the scale
// subresource, the pods and the metrics APIs.
type cluster struct {
	mu sync.Mutex
	// The time base: trace second `start` is bubble time `epoch`.
	epoch time.Time
	start float64
	// The scale subresource's spec.replicas, as the controller last set it.
	specReplicas int32
	namespace    string
	pods         []pod
	nextPod      int
	// The instant (trace seconds) the metrics answer for, the sync the
	// harness prepared, and the Ready pods then.
	preparedFor float64
	ready       map[string]bool
	values      map[string]float64
	// What the controller did: the bubble times of its scale reads (one
	// per reconcile).
	reconciles []time.Time
	problem    error
}

func (c *cluster) now() float64 {
	return c.start + time.Since(c.epoch).Seconds()
}

func (c *cluster) fail(format string, args ...any) {
	if c.problem == nil {
		c.problem = fmt.Errorf(format, args...)
	}
}

// replay runs one case inside the caller's synctest bubble.
func replay(t *testing.T, c Case) ([]Point, error) {
	hpa, err := readHPA(c.HPA)
	if err != nil {
		return nil, err
	}
	recorded, err := readTrace(c.Trace)
	if err != nil {
		return nil, err
	}
	period := cmp.Or(c.SyncPeriodSeconds, defaultSyncPeriod)
	tolerance := cmp.Or(c.Tolerance, defaultTolerance)
	downscale := cmp.Or(c.DownscaleWindowSeconds, defaultDownscaleWindow)

	sources := map[string]metricSource{}
	container := "server"
	for _, spec := range hpa.Spec.Metrics {
		name, source, err := sourceOf(spec, recorded)
		if err != nil {
			return nil, err
		}
		sources[name] = source
		if spec.ContainerResource != nil {
			container = spec.ContainerResource.Container
		}
	}

	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	initial := max(c.InitialReplicas, minReplicas)
	initial = min(initial, max(hpa.Spec.MaxReplicas, minReplicas))
	defaultRecorded := float64(initial)
	if c.RecordedReplicas != nil {
		defaultRecorded = *c.RecordedReplicas
	}
	recordedAt := func(at float64) float64 {
		if recorded.replicas != nil {
			if value, ok := recorded.replicas.at(at); ok {
				return math.Max(value, 0)
			}
		}
		return math.Max(defaultRecorded, 0)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	state := &cluster{epoch: time.Now(), start: recorded.start, specReplicas: initial}
	client := fake.NewClientset(hpa)
	state.namespace = hpa.Namespace
	for range initial {
		state.addPod(ctx, client, recorded.start-c.Startup, recorded.start, container)
	}

	// The controller reads the scale subresource of its target; the
	// workload controller behind it is the harness.
	gv, err := schema.ParseGroupVersion(hpa.Spec.ScaleTargetRef.APIVersion)
	if err != nil {
		return nil, err
	}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{gv})
	mapper.Add(gv.WithKind(hpa.Spec.ScaleTargetRef.Kind), meta.RESTScopeNamespace)
	scales := &scalefake.FakeScaleClient{}
	scales.AddReactor("get", "*", func(action core.Action) (bool, runtime.Object, error) {
		state.mu.Lock()
		defer state.mu.Unlock()
		state.reconciles = append(state.reconciles, time.Now())
		return true, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: hpa.Spec.ScaleTargetRef.Name, Namespace: hpa.Namespace},
			Spec:       autoscalingv1.ScaleSpec{Replicas: state.specReplicas},
			Status: autoscalingv1.ScaleStatus{
				Replicas: int32(len(state.pods)),
				Selector: labels.SelectorFromSet(labels.Set{"app": podLabel}).String(),
			},
		}, nil
	})
	scales.AddReactor("update", "*", func(action core.Action) (bool, runtime.Object, error) {
		scale := action.(core.UpdateAction).GetObject().(*autoscalingv1.Scale)
		state.mu.Lock()
		defer state.mu.Unlock()
		state.specReplicas = scale.Spec.Replicas
		return true, scale, nil
	})

	metrics := &metricsAnswer{state: state, sources: sources, recordedAt: recordedAt}
	factory := informers.NewSharedInformerFactory(client, 0)
	controller := podautoscaler.NewHorizontalController(
		ctx,
		fake.NewClientset().CoreV1(),
		scales,
		client.AutoscalingV2(),
		mapper,
		metrics,
		factory.Autoscaling().V2().HorizontalPodAutoscalers(),
		factory.Core().V1().Pods(),
		seconds(period),
		seconds(downscale),
		tolerance,
		cpuInitialization,
		initialReadinessDelay,
	)
	state.prepare(ctx, client, recorded.start)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	synctest.Wait()
	done := make(chan struct{})
	go func() {
		controller.Run(ctx, 1)
		close(done)
	}()

	var points []Point
	for step := 0; ; step++ {
		at := recorded.start + float64(step)*period
		if at > recorded.end {
			break
		}
		// Halfway to the next sync the controller has finished this one.
		time.Sleep(time.Until(state.epoch.Add(seconds(at - recorded.start + period/2))))
		synctest.Wait()
		state.mu.Lock()
		problem := state.problem
		if problem == nil && len(state.reconciles) != step+1 {
			problem = fmt.Errorf("at t=%v the controller had reconciled %d times, not %d", at-recorded.start, len(state.reconciles), step+1)
		}
		if problem == nil {
			if last := state.reconciles[step]; !last.Equal(state.epoch.Add(seconds(at - recorded.start))) {
				problem = fmt.Errorf("sync %d ran at t=%v, not on the %v s grid", step, last.Sub(state.epoch).Seconds(), period)
			}
		}
		desired := state.specReplicas
		readyCount := int32(len(state.ready))
		state.mu.Unlock()
		if problem != nil {
			cancel()
			<-done
			return points, problem
		}
		points = append(points, Point{T: at - recorded.start, Desired: desired, Ready: readyCount})
		state.scaleTo(ctx, client, at, c.Startup, desired, container)
		state.prepare(ctx, client, at+period)
	}
	cancel()
	<-done
	return points, nil
}

func seconds(value float64) time.Duration {
	return time.Duration(math.Round(value * float64(time.Second)))
}

// sourceOf maps one HPA metric to its series and load model, keyed
// (`pods/NAME`, `resource/cpu`, …) as metricsAnswer looks it up.
func sourceOf(spec autoscalingv2.MetricSpec, recorded *trace) (string, metricSource, error) {
	var kind, metric string
	var source metricSource
	switch spec.Type {
	case autoscalingv2.PodsMetricSourceType:
		kind, metric, source.perPod = "pods", spec.Pods.Metric.Name, true
	case autoscalingv2.ResourceMetricSourceType:
		kind, metric, source.perPod = "resource", string(spec.Resource.Name), true
		source.utilization = spec.Resource.Target.Type == autoscalingv2.UtilizationMetricType
	case autoscalingv2.ContainerResourceMetricSourceType:
		kind, metric, source.perPod = "resource", string(spec.ContainerResource.Name), true
		source.utilization = spec.ContainerResource.Target.Type == autoscalingv2.UtilizationMetricType
	case autoscalingv2.ExternalMetricSourceType:
		kind, metric = "external", spec.External.Metric.Name
		source.perPod = spec.External.Target.Type == autoscalingv2.AverageValueMetricType
	case autoscalingv2.ObjectMetricSourceType:
		kind, metric = "object", spec.Object.Metric.Name
		source.perPod = spec.Object.Target.Type == autoscalingv2.AverageValueMetricType
	default:
		return "", source, fmt.Errorf("metric type %q is not replayed", spec.Type)
	}
	s, err := recorded.seriesFor(metric)
	source.series = s
	return kind + "/" + metric, source, err
}

// addPod creates a Running pod with a 1-core, 1-byte request (Resource
// utilization is a percent of it), Ready at `readyAt` trace seconds.
func (c *cluster) addPod(ctx context.Context, client *fake.Clientset, created, readyAt float64, container string) {
	name := fmt.Sprintf("pod-%d", c.nextPod)
	c.nextPod++
	c.pods = append(c.pods, pod{name: name, created: created, readyAt: readyAt})
	object := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Namespace:         c.namespace,
			Labels:            map[string]string{"app": podLabel},
			CreationTimestamp: metav1.NewTime(c.epoch.Add(seconds(created - c.start))),
		},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: container,
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
				v1.ResourceCPU:    resource.MustParse("1"),
				v1.ResourceMemory: resource.MustParse("1"),
			}},
		}}},
		Status: v1.PodStatus{
			Phase:     v1.PodRunning,
			StartTime: ptr.To(metav1.NewTime(c.epoch.Add(seconds(created - c.start)))),
			Conditions: []v1.PodCondition{{
				Type:   v1.PodReady,
				Status: v1.ConditionFalse,
			}},
		},
	}
	if _, err := client.CoreV1().Pods(c.namespace).Create(ctx, object, metav1.CreateOptions{}); err != nil {
		c.fail("creating %s: %v", name, err)
	}
}

// scaleTo is the workload controller: new pods for a scale-up (created
// now, Ready after `startup`), and for a scale-down the pods a ReplicaSet
// removes first: not Ready, then the newest.
func (c *cluster) scaleTo(ctx context.Context, client *fake.Clientset, now, startup float64, desired int32, container string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for int32(len(c.pods)) < desired {
		c.addPod(ctx, client, now, now+startup, container)
	}
	if int32(len(c.pods)) > desired {
		sort.SliceStable(c.pods, func(a, b int) bool {
			readyA, readyB := c.pods[a].readyAt <= now, c.pods[b].readyAt <= now
			if readyA != readyB {
				return !readyA
			}
			return c.pods[a].created > c.pods[b].created
		})
		for _, gone := range c.pods[:len(c.pods)-int(desired)] {
			if err := client.CoreV1().Pods(c.namespace).Delete(ctx, gone.name, metav1.DeleteOptions{}); err != nil {
				c.fail("deleting %s: %v", gone.name, err)
			}
		}
		c.pods = c.pods[len(c.pods)-int(desired):]
	}
}

// prepare is the kubelet and the metrics pipeline before the sync at `at`:
// each pod's Ready condition as of then, and the value each metric reads.
func (c *cluster) prepare(ctx context.Context, client *fake.Clientset, at float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.preparedFor = at
	ready := map[string]bool{}
	for _, p := range c.pods {
		if p.readyAt > at {
			continue
		}
		ready[p.name] = true
		if c.ready[p.name] {
			continue
		}
		object, err := client.CoreV1().Pods(c.namespace).Get(ctx, p.name, metav1.GetOptions{})
		if err != nil {
			c.fail("reading %s: %v", p.name, err)
			continue
		}
		object.Status.Conditions = []v1.PodCondition{{
			Type:               v1.PodReady,
			Status:             v1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(c.epoch.Add(seconds(p.readyAt - c.start))),
		}}
		if _, err := client.CoreV1().Pods(c.namespace).UpdateStatus(ctx, object, metav1.UpdateOptions{}); err != nil {
			c.fail("marking %s Ready: %v", p.name, err)
		}
	}
	c.ready = ready
}

// metricsAnswer is the metrics APIs (metrics-server, custom and external
// metrics adapters) as the controller's MetricsClient sees them.
type metricsAnswer struct {
	state      *cluster
	sources    map[string]metricSource
	recordedAt func(float64) float64
}

var _ metricsclient.MetricsClient = (*metricsAnswer)(nil)

// value is the metric's reading at the prepared instant: for a per-pod
// metric, the load (value × recorded replicas); otherwise the value.
func (m *metricsAnswer) value(key string) (metricSource, float64, time.Time, error) {
	state := m.state
	state.mu.Lock()
	defer state.mu.Unlock()
	source, ok := m.sources[key]
	if !ok {
		return source, 0, time.Time{}, fmt.Errorf("no metric %s", key)
	}
	now := time.Now()
	if at := state.now(); math.Abs(at-state.preparedFor) > 1e-6 {
		state.fail("the controller read %s at t=%v, the harness prepared t=%v", key, at-state.start, state.preparedFor-state.start)
	}
	raw, _ := source.series.at(state.preparedFor)
	if source.perPod {
		raw *= m.recordedAt(state.preparedFor)
	}
	return source, raw, now, nil
}

// perPod shares a load among the Ready pods; the others report nothing.
func (m *metricsAnswer) perPod(key string) (metricsclient.PodMetricsInfo, time.Time, error) {
	source, total, now, err := m.value(key)
	if err != nil {
		return nil, now, err
	}
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	info := metricsclient.PodMetricsInfo{}
	if len(m.state.ready) == 0 {
		return info, now, nil
	}
	share := total / float64(len(m.state.ready))
	if source.utilization {
		// A percent of a 1-core request, in cores.
		share /= 100
	}
	for name := range m.state.ready {
		info[name] = metricsclient.PodMetric{Timestamp: now, Window: 0, Value: milli(share)}
	}
	return info, now, nil
}

func (m *metricsAnswer) GetResourceMetric(_ context.Context, name v1.ResourceName, _ string, _ labels.Selector, _ string) (metricsclient.PodMetricsInfo, time.Time, error) {
	return m.perPod("resource/" + string(name))
}

func (m *metricsAnswer) GetRawMetric(name string, _ string, _ labels.Selector, _ labels.Selector) (metricsclient.PodMetricsInfo, time.Time, error) {
	return m.perPod("pods/" + name)
}

func (m *metricsAnswer) GetObjectMetric(name string, _ string, _ *autoscalingv2.CrossVersionObjectReference, _ labels.Selector) (int64, time.Time, error) {
	_, value, now, err := m.value("object/" + name)
	return milli(value), now, err
}

func (m *metricsAnswer) GetExternalMetric(name string, _ string, _ labels.Selector) ([]int64, time.Time, error) {
	_, value, now, err := m.value("external/" + name)
	return []int64{milli(value)}, now, err
}
