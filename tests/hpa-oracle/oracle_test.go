// The HPA oracle: Kubernetes' own HorizontalController
// (k8s.io/kubernetes/pkg/controller/podautoscaler) replaying a recorded
// metric trace under the load model of `infergate simulate`, so the two can
// be compared sync by sync (tests/oracle.rs).
//
// The controller runs as kube-controller-manager runs it (NewHorizontalController,
// informers, Run) against fake clientsets, inside a testing/synctest bubble:
// its time.Now() is the bubble's clock, so 15 s syncs and 5 min windows pass
// instantly and the same trace always gives the same replay. The harness
// plays the rest of the cluster between two syncs: the workload controller
// (pods created and removed as the scale subresource asks), the kubelet
// (a pod turns Ready `startup` seconds after its creation) and the metrics
// pipeline (per-pod values from the trace under the load model).
//
// Run as a test binary:
//
//	go test -c -o hpa-oracle . && ./hpa-oracle -test.run TestReplay -cases cases.json -out results.json
package oracle

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"testing/synctest"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

var (
	casesFile = flag.String("cases", "", "a JSON array of cases to replay (see Case)")
	outFile   = flag.String("out", "", "where to write the JSON array of results")
	logs      = flag.Bool("logs", false, "show the controller's logs")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !*logs {
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
	}
	// apimachinery's HandleError sleeps to keep errors 1 ms apart, measured
	// from the real time it started at: inside a bubble, whose clock starts
	// in 2000, that sleep never ends. Errors are only logged here.
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
		func(ctx context.Context, err error, msg string, keysAndValues ...any) {
			klog.FromContext(ctx).Error(err, msg, keysAndValues...)
		},
	}
	os.Exit(m.Run())
}

// Case is one replay: an HPA, a trace and the load model's parameters, as
// `infergate simulate` takes them on its command line.
type Case struct {
	Name string `json:"name"`
	// A YAML file holding the HorizontalPodAutoscaler (its other documents
	// are ignored).
	HPA string `json:"hpa"`
	// A CSV trace, `timestamp,metric,value[,replicas]`, as simulate reads it.
	Trace string `json:"trace"`
	// Seconds from a pod's creation to Ready (simulate's --startup).
	Startup float64 `json:"startup"`
	// Pods at the start, all Ready (simulate's --initial-replicas).
	InitialReplicas int32 `json:"initialReplicas"`
	// The pods the trace was recorded at when it has no replicas column
	// (simulate's --recorded-replicas); the initial replicas when absent.
	RecordedReplicas *float64 `json:"recordedReplicas,omitempty"`
	// kube-controller-manager's HPA flags; their defaults when zero.
	SyncPeriodSeconds      float64 `json:"syncPeriodSeconds,omitempty"`
	Tolerance              float64 `json:"tolerance,omitempty"`
	DownscaleWindowSeconds float64 `json:"downscaleWindowSeconds,omitempty"`
}

// Point is one sync, in the shape of `simulate --format json`'s series.
type Point struct {
	T       float64 `json:"t"`
	Desired int32   `json:"desired"`
	Ready   int32   `json:"ready"`
}

type Result struct {
	Name   string  `json:"name"`
	Series []Point `json:"series"`
	Error  string  `json:"error,omitempty"`
}

func TestReplay(t *testing.T) {
	if *casesFile == "" {
		t.Skip("no -cases file: nothing to replay")
	}
	data, err := os.ReadFile(*casesFile)
	if err != nil {
		t.Fatalf("reading the cases: %v", err)
	}
	var cases []Case
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("%s: %v", *casesFile, err)
	}
	results := make([]Result, len(cases))
	// The parallel subtests end before this group does.
	t.Run("cases", func(t *testing.T) {
		for index, c := range cases {
			results[index].Name = c.Name
			t.Run(c.Name, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					series, err := replay(t, c)
					results[index].Series = series
					if err != nil {
						results[index].Error = err.Error()
					}
				})
			})
		}
	})
	out, err := json.MarshalIndent(results, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if *outFile == "" {
		fmt.Println(string(out))
		return
	}
	if err := os.WriteFile(*outFile, out, 0o644); err != nil {
		t.Fatalf("writing %s: %v", *outFile, err)
	}
}
