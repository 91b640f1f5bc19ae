package oracle

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	autoscalingv2defaults "k8s.io/kubernetes/pkg/apis/autoscaling/v2"
	"sigs.k8s.io/yaml"
)

// readHPA returns the HorizontalPodAutoscaler of a YAML file, as the
// apiserver stores it: autoscaling/v1 converted to v2, and v2's defaults
// (minReplicas 1, the default scaling rules of a behavior written in part)
// filled in by the apiserver's own defaulting functions.
func readHPA(path string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, document := range splitDocuments(data) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(document, &head); err != nil || head.Kind != "HorizontalPodAutoscaler" {
			continue
		}
		var hpa autoscalingv2.HorizontalPodAutoscaler
		switch head.APIVersion {
		case "autoscaling/v2":
			if err := yaml.UnmarshalStrict(document, &hpa); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		case "autoscaling/v1":
			var legacy autoscalingv1.HorizontalPodAutoscaler
			if err := yaml.UnmarshalStrict(document, &legacy); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			hpa = fromV1(&legacy)
		default:
			return nil, fmt.Errorf("%s: HorizontalPodAutoscaler %s is not autoscaling/v1 or v2", path, head.APIVersion)
		}
		autoscalingv2defaults.SetObjectDefaults_HorizontalPodAutoscaler(&hpa)
		if hpa.Namespace == "" {
			hpa.Namespace = "default"
		}
		return &hpa, nil
	}
	return nil, fmt.Errorf("%s holds no HorizontalPodAutoscaler", path)
}

func splitDocuments(data []byte) [][]byte {
	var documents [][]byte
	var current bytes.Buffer
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	for scanner.Scan() {
		line := scanner.Bytes()
		if bytes.HasPrefix(line, []byte("---")) {
			documents = append(documents, bytes.Clone(current.Bytes()))
			current.Reset()
			continue
		}
		current.Write(line)
		current.WriteByte('\n')
	}
	return append(documents, current.Bytes())
}

// fromV1 is the apiserver's conversion of an autoscaling/v1 HPA: a CPU
// utilization target when it names one.
func fromV1(legacy *autoscalingv1.HorizontalPodAutoscaler) autoscalingv2.HorizontalPodAutoscaler {
	hpa := autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: legacy.ObjectMeta,
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: legacy.Spec.ScaleTargetRef.APIVersion,
				Kind:       legacy.Spec.ScaleTargetRef.Kind,
				Name:       legacy.Spec.ScaleTargetRef.Name,
			},
			MinReplicas: legacy.Spec.MinReplicas,
			MaxReplicas: legacy.Spec.MaxReplicas,
		},
	}
	if target := legacy.Spec.TargetCPUUtilizationPercentage; target != nil {
		hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   v1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: target},
			},
		}}
	}
	return hpa
}

// series is one metric's samples, sorted by time.
type series struct {
	times  []float64
	values []float64
}

// at is the sample in force at t: the last one at or before t, else the
// first (simulate's Series::at).
func (s *series) at(t float64) (float64, bool) {
	if len(s.times) == 0 {
		return 0, false
	}
	index := sort.Search(len(s.times), func(i int) bool { return s.times[i] > t })
	if index == 0 {
		return s.values[0], true
	}
	return s.values[index-1], true
}

type trace struct {
	metrics  map[string]*series
	replicas *series
	start    float64
	end      float64
}

// readTrace reads simulate's CSV trace: `timestamp,metric,value[,replicas]`,
// `#` comments, an optional header; timestamps in seconds or RFC 3339.
func readTrace(path string) (*trace, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	result := &trace{metrics: map[string]*series{}, replicas: &series{}}
	first := true
	for number, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		header := first && strings.EqualFold(fields[0], "timestamp")
		first = false
		if header {
			continue
		}
		where := fmt.Sprintf("%s:%d", path, number+1)
		if len(fields) < 3 || len(fields) > 4 {
			return nil, fmt.Errorf("%s: expected timestamp,metric,value[,replicas]", where)
		}
		at, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			parsed, err := time.Parse(time.RFC3339Nano, fields[0])
			if err != nil {
				return nil, fmt.Errorf("%s: bad timestamp %q", where, fields[0])
			}
			at = float64(parsed.UnixNano()) / 1e9
		}
		value, err := strconv.ParseFloat(fields[2], 64)
		if err != nil || math.IsNaN(value) || math.IsInf(value, 0) {
			return nil, fmt.Errorf("%s: bad value %q", where, fields[2])
		}
		metric := result.metrics[fields[1]]
		if metric == nil {
			metric = &series{}
			result.metrics[fields[1]] = metric
		}
		metric.times = append(metric.times, at)
		metric.values = append(metric.values, value)
		if len(fields) == 4 && fields[3] != "" {
			count, err := strconv.ParseFloat(fields[3], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: bad replicas %q", where, fields[3])
			}
			last := len(result.replicas.times) - 1
			if last < 0 || result.replicas.times[last] != at {
				result.replicas.times = append(result.replicas.times, at)
				result.replicas.values = append(result.replicas.values, count)
			}
		}
	}
	if len(result.metrics) == 0 {
		return nil, fmt.Errorf("%s: no samples", path)
	}
	all := []*series{result.replicas}
	for _, metric := range result.metrics {
		all = append(all, metric)
	}
	result.start, result.end = math.Inf(1), math.Inf(-1)
	for _, s := range all {
		if len(s.times) == 0 {
			continue
		}
		result.start = math.Min(result.start, s.times[0])
		result.end = math.Max(result.end, s.times[len(s.times)-1])
	}
	if len(result.replicas.times) == 0 {
		result.replicas = nil
	}
	return result, nil
}

// seriesFor finds the trace's series for an HPA metric name: the name, or
// the bare metric of Google Managed Prometheus' adapter form
// `prometheus.googleapis.com|NAME|KIND`.
func (t *trace) seriesFor(name string) (*series, error) {
	if s, ok := t.metrics[name]; ok {
		return s, nil
	}
	if parts := strings.Split(name, "|"); len(parts) == 3 && parts[0] == "prometheus.googleapis.com" {
		if s, ok := t.metrics[parts[1]]; ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("the trace has no series for the HPA's metric %q", name)
}

// milli is a value as the metrics APIs carry it: a decimal Quantity (the
// shortest decimal that names the float), read as the controller reads it,
// MilliValue() rounding up.
func milli(value float64) int64 {
	quantity, err := resource.ParseQuantity(strconv.FormatFloat(value, 'f', -1, 64))
	if err != nil {
		panic(fmt.Sprintf("value %v is no Quantity: %v", value, err))
	}
	return quantity.MilliValue()
}
