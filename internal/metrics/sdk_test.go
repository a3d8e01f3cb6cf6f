package metrics

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

func TestSDKHandler(t *testing.T) {
	r := NewRegistry()
	var h client.MetricsHandler = NewSDKHandler(r)
	h.Counter("temporal_request").Inc(1)
	ns := h.WithTags(map[string]string{"namespace": "default", "task_queue": "tokenwarden"})
	req := ns.WithTags(map[string]string{"operation": "StartWorkflowExecution"})
	req.Counter("temporal_request").Inc(2)
	req.Counter("temporal_request").Inc(1)
	req.Counter("temporal_request").Inc(-5) // ignored: counters only go up
	// A tag set again is overwritten; odd tag names and values are made safe.
	ns.WithTags(map[string]string{"task_queue": "other", "weird-tag": `a"b`}).Gauge("temporal_num_pollers").Update(2)
	ns.Gauge("temporal_num_pollers").Update(5)
	ns.Gauge("temporal_num_pollers").Update(3)
	timer := req.Timer("temporal_request_latency")
	timer.Record(30 * time.Millisecond)
	timer.Record(2 * time.Second)
	timer.Record(20 * time.Minute)

	want := `# HELP temporal_num_pollers Temporal SDK metric temporal_num_pollers.
# TYPE temporal_num_pollers gauge
temporal_num_pollers{namespace="default",task_queue="other",weird_tag="a\"b"} 2
temporal_num_pollers{namespace="default",task_queue="tokenwarden"} 3
# HELP temporal_request Temporal SDK metric temporal_request.
# TYPE temporal_request counter
temporal_request 1
temporal_request{namespace="default",operation="StartWorkflowExecution",task_queue="tokenwarden"} 3
# HELP temporal_request_latency Temporal SDK metric temporal_request_latency.
# TYPE temporal_request_latency histogram
`
	got := text(t, r)
	if !strings.HasPrefix(got, want) {
		t.Fatalf("exposition:\n%s\nwant it to start with:\n%s", got, want)
	}
	lbl := `namespace="default",operation="StartWorkflowExecution",task_queue="tokenwarden"`
	for _, line := range []string{
		`temporal_request_latency_bucket{` + lbl + `,le="0.025"} 0`,
		`temporal_request_latency_bucket{` + lbl + `,le="0.05"} 1`,
		`temporal_request_latency_bucket{` + lbl + `,le="2.5"} 2`,
		`temporal_request_latency_bucket{` + lbl + `,le="600"} 2`,
		`temporal_request_latency_bucket{` + lbl + `,le="+Inf"} 3`,
		`temporal_request_latency_sum{` + lbl + `} 1202.03`,
		`temporal_request_latency_count{` + lbl + `} 3`,
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
	h.Gauge("temporal_mine_total").Update(7)
	h.Timer("temporal_mine_total").Record(time.Second)
	h.Counter("temporal_mine_total").Inc(1)
	h.Counter("temporal_x").Inc(1)
	h.Gauge("temporal_x").Update(3)
	if own.Value("") != 0 || strings.Contains(text(t, r), "temporal_x 3") || !strings.Contains(text(t, r), "temporal_x 1\n") {
		t.Fatalf("conflicting names recorded:\n%s", text(t, r))
	}
}

func greet(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	workflow.GetMetricsHandler(ctx).Counter("temporal_test_greetings").Inc(1)
	var out string
	err := workflow.ExecuteActivity(ctx, hello, name).Get(ctx, &out)
	return out, err
}

func hello(ctx context.Context, name string) (string, error) {
	activity.GetMetricsHandler(ctx).Timer("temporal_test_hello_latency").Record(10 * time.Millisecond)
	return "hello " + name, nil
}

// The handler as the SDK hands it to workflow and activity code, with its tags.
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
		"# TYPE temporal_test_greetings counter\n",
		"# TYPE temporal_test_hello_latency histogram\n",
		`workflow_type="greet"`,
		`activity_type="hello"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}
