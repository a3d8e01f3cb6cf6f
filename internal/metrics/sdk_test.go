package metrics

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// TestSDKHandlerNaming: the SDK's names become the ones Temporal's SDK dashboards
// query (temporal_request_total, temporal_request_latency_seconds_bucket, ...), with
// tag sets that differ within one name.
func TestSDKHandlerNaming(t *testing.T) {
	r := NewRegistry()
	var h client.MetricsHandler = NewSDKHandler(r)
	h.Counter("temporal_request").Inc(1)
	ns := h.WithTags(map[string]string{"namespace": "default", "task_queue": "tokenwarden"})
	req := ns.WithTags(map[string]string{"operation": "StartWorkflowExecution"})
	req.Counter("temporal_request").Inc(2)
	req.Counter("temporal_request").Inc(1)
	req.Counter("temporal_request").Inc(-5) // ignored: counters only go up
	// A tag set again is overwritten; odd tag names are made safe.
	ns.WithTags(map[string]string{"task_queue": "other", "weird-tag": `a"b`}).Gauge("temporal_num_pollers").Update(2)
	ns.Gauge("temporal_num_pollers").Update(5)
	ns.Gauge("temporal_num_pollers").Update(3)
	timer := req.Timer("temporal_request_latency")
	timer.Record(30 * time.Millisecond)
	timer.Record(2 * time.Second)
	timer.Record(20 * time.Minute)
	ns.Timer("temporal_workflow_task_schedule_to_start_latency").Record(time.Millisecond)

	got := text(t, r)
	lbl := `namespace="default",operation="StartWorkflowExecution",task_queue="tokenwarden"`
	for _, line := range []string{
		"# TYPE temporal_request_total counter",
		"temporal_request_total 1",
		`temporal_request_total{` + lbl + `} 3`,
		"# TYPE temporal_num_pollers gauge",
		`temporal_num_pollers{namespace="default",task_queue="other",weird_tag="a\"b"} 2`,
		`temporal_num_pollers{namespace="default",task_queue="tokenwarden"} 3`,
		"# TYPE temporal_request_latency_seconds histogram",
		`temporal_request_latency_seconds_bucket{` + lbl + `,le="0.025"} 0`,
		`temporal_request_latency_seconds_bucket{` + lbl + `,le="0.05"} 1`,
		`temporal_request_latency_seconds_bucket{` + lbl + `,le="2.5"} 2`,
		`temporal_request_latency_seconds_bucket{` + lbl + `,le="600"} 2`,
		`temporal_request_latency_seconds_bucket{` + lbl + `,le="+Inf"} 3`,
		`temporal_request_latency_seconds_sum{` + lbl + `} 1202.03`,
		`temporal_request_latency_seconds_count{` + lbl + `} 3`,
		`temporal_workflow_task_schedule_to_start_latency_seconds_bucket{namespace="default",task_queue="tokenwarden",le="0.001"} 1`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in\n%s", line, got)
		}
	}
}

// A name already taken with another type must not break the SDK: it records nothing.
func TestSDKHandlerTypeConflict(t *testing.T) {
	r := NewRegistry()
	own := r.NewCounter("temporal_mine_total", "Ours.", "x")
	h := NewSDKHandler(r)
	h.Counter("temporal_mine").Inc(1) // would be temporal_mine_total
	h.Gauge("temporal_mine_total").Update(7)
	h.Counter("temporal_x").Inc(1)
	h.Timer("temporal_x_total").Record(time.Second) // temporal_x_total_seconds: its own name
	h.Gauge("temporal_x_total").Update(3)           // the counter's name: dropped
	got := text(t, r)
	if own.Value("") != 0 || strings.Contains(got, "temporal_x_total 3") || !strings.Contains(got, "temporal_x_total 1\n") {
		t.Fatalf("conflicting names recorded:\n%s", got)
	}
	if NewSDKHandler(r).Counter("temporal_x").Inc(1); !strings.Contains(text(t, r), "temporal_x_total 2\n") {
		t.Fatal("a second handler of the same registry must share the series")
	}
}

func TestSDKHandlerConcurrentUse(t *testing.T) {
	r := NewRegistry()
	h := NewSDKHandler(r)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			tagged := h.WithTags(map[string]string{"worker": string(rune('a' + i%2))})
			for range 100 {
				tagged.Counter("temporal_request").Inc(1)
				tagged.Timer("temporal_request_latency").Record(time.Millisecond)
				_ = text(t, r)
			}
		})
	}
	wg.Wait()
	got := text(t, r)
	if !strings.Contains(got, `temporal_request_total{worker="a"} 400`+"\n") || !strings.Contains(got, `temporal_request_total{worker="b"} 400`+"\n") {
		t.Fatalf("counts:\n%s", got)
	}
}

func greet(ctx workflow.Context, name string) (string, error) {
	workflow.GetMetricsHandler(ctx).Counter("temporal_test_greetings").Inc(1)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var out string
	err := workflow.ExecuteActivity(ctx, hello, name).Get(ctx, &out)
	return out, err
}

func hello(ctx context.Context, name string) (string, error) {
	activity.GetMetricsHandler(ctx).Timer("temporal_test_hello_latency").Record(time.Millisecond)
	return "hello " + name, nil
}

func TestSDKHandlerWithTheSDK(t *testing.T) {
	r := NewRegistry()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	suite.SetMetricsHandler(NewSDKHandler(r))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(hello)
	env.ExecuteWorkflow(greet, "metrics")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got := text(t, r)
	for _, want := range []string{
		"# TYPE temporal_test_greetings_total counter\n",
		"# TYPE temporal_test_hello_latency_seconds histogram\n",
		`workflow_type="greet"`,
		`activity_type="hello"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}
