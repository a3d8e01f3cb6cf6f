package main

// Key safety: the worker's start-up check that its key file holds every key the token
// store uses, and -remove-key's check that no running credential's current run holds
// payloads under the key it would remove.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tokenwarden/tokenwarden/internal/codec"
	"github.com/tokenwarden/tokenwarden/internal/config"
	"github.com/tokenwarden/tokenwarden/internal/keyring"
	"github.com/tokenwarden/tokenwarden/internal/store"
	"github.com/tokenwarden/tokenwarden/workflows"
)

// keyCounter is what checkStoreKeys needs of the token store: the key IDs its rows are
// under, and a few records to open.
type keyCounter interface {
	store.KeyInventory
	store.Reader
}

// probeRecords is how many records checkStoreKeys tries to open: a key file whose key
// has the right ID but other bytes (say, a development key generated again) opens none
// of them. Only if every one fails does the worker refuse to start, so that one damaged
// record does not keep it from serving the others.
const probeRecords = 3

// checkStoreKeys refuses a key file that lacks a key the token store's rows are sealed
// or authenticated under. A worker started with the wrong (or an outdated) key file
// would otherwise run, and fail every read of those rows one refresh at a time.
func checkStoreKeys(ctx context.Context, st keyCounter, ring *keyring.Keyring, keyFile, storeDesc string) error {
	records, err := st.KeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("check the token store's key IDs: %w", err)
	}
	apiKeys, err := st.APIKeyKeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("check the token store's key IDs: %w", err)
	}
	held := ring.IDs()
	var missing []string
	for _, id := range slices.Sorted(maps.Keys(records)) {
		if !slices.Contains(held, id) {
			missing = append(missing, fmt.Sprintf("%s (%d records)", id, records[id]))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(apiKeys)) {
		if !slices.Contains(held, id) {
			missing = append(missing, fmt.Sprintf("%s (%d API keys)", id, apiKeys[id]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("token store %s holds rows under keys the key file %s does not hold: %s (the key file holds %s); is it the right key file? Add the missing keys to it (restore them from its backup)",
			storeDesc, keyFile, strings.Join(missing, ", "), strings.Join(held, ", "))
	}

	recs, err := st.List(ctx)
	if err != nil {
		return fmt.Errorf("check the token store's records: %w", err)
	}
	var firstErr error
	tried := 0
	for _, rec := range recs {
		if tried == probeRecords {
			break
		}
		_, err := st.Get(ctx, rec.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since List
		}
		if err == nil {
			return nil
		}
		tried++
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return fmt.Errorf("the key file %s opens none of the %d records of token store %s it tried (is it the right key file? a key with the same ID but other bytes reads like this): %w",
			keyFile, tried, storeDesc, firstErr)
	}
	return nil
}

// historyDialTimeout bounds how long -remove-key waits for the Temporal server.
const historyDialTimeout = 15 * time.Second

// dialForKeyCheck connects to the worker's Temporal namespace for -remove-key. It needs
// no data converter: the check reads payload metadata only, never decrypts.
func dialForKeyCheck(ctx context.Context, cfg config.Worker, stderr io.Writer) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, historyDialTimeout)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The same connection as the worker's own (profiles, API key, TLS).
	opts, err := cfg.ClientOptions(nil)
	if err != nil {
		return nil, err
	}
	opts.Logger = sdklog.NewStructuredLogger(logger)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Temporal server (%s) to check the running workflows' histories: %w", config.DescribeConnection(opts), err)
	}
	return c, nil
}

// historyReader is what runsUsingKey needs of a Temporal client.
type historyReader interface {
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	GetWorkflowHistory(ctx context.Context, workflowID string, runID string, isLongPoll bool, filterType enumspb.HistoryEventFilterType) client.HistoryEventIterator
}

// keyUse is a running credential workflow whose current run holds payloads sealed under
// the key in question.
type keyUse struct {
	workflowID, runID string
	payloads          int
}

func (u keyUse) String() string {
	return fmt.Sprintf("%s (run %s, %d payloads)", u.workflowID, u.runID, u.payloads)
}

// runsUsingKey reads the history of every running credential workflow's current run
// and returns those with a payload whose encryption-key-id metadata (internal/codec) is
// keyID. A running workflow replays its current run from the start whenever a worker
// picks it up without a cached copy, so every payload of that run must stay decodable;
// closed runs are not replayed (and are the namespace retention's concern).
func runsUsingKey(ctx context.Context, c historyReader, namespace, keyID string) ([]keyUse, error) {
	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.WorkflowType)
	var uses []keyUse
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list running workflows: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			wid, rid := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
			n, err := countKeyPayloads(ctx, c, wid, rid, keyID)
			if err != nil {
				return nil, fmt.Errorf("read the history of workflow %s (run %s): %w", wid, rid, err)
			}
			if n > 0 {
				uses = append(uses, keyUse{workflowID: wid, runID: rid, payloads: n})
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return uses, nil
		}
	}
}

// countKeyPayloads counts the payloads of one run's history sealed under keyID. It
// visits every payload of every event (inputs, results, signals, updates, failures,
// memo, user metadata), not only the ones tokenwarden writes today.
func countKeyPayloads(ctx context.Context, c historyReader, workflowID, runID, keyID string) (int, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, err
		}
		err = proxy.VisitPayloads(ctx, ev, proxy.VisitPayloadsOptions{
			SkipSearchAttributes: true, // plaintext by design (never encrypted)
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				for _, p := range ps {
					if string(p.GetMetadata()[codec.MetadataKeyID]) == keyID {
						n++
					}
				}
				return ps, nil
			},
		})
		if err != nil {
			return 0, fmt.Errorf("visit payloads: %w", err)
		}
	}
	return n, nil
}

// errKeyInHistory means running workflows still need the key.
var errKeyInHistory = errors.New("running workflows' current runs hold payloads under the key")

// maxNamedRuns bounds how many workflows the refusal names; the count is always given.
const maxNamedRuns = 20

// refuseKeyInHistory describes uses for the operator.
func refuseKeyInHistory(keyID string, uses []keyUse) error {
	names := make([]string, 0, min(len(uses), maxNamedRuns))
	for _, u := range uses[:min(len(uses), maxNamedRuns)] {
		names = append(names, u.String())
	}
	more := ""
	if len(uses) > maxNamedRuns {
		more = fmt.Sprintf(" and %d more", len(uses)-maxNamedRuns)
	}
	return fmt.Errorf("%w: %d running workflows would no longer replay without key %s: %s%s. Each moves on to a new run (continue-as-new) by itself after its history reaches its event budget, sealed under the primary key; run worker -remove-key again once none is left",
		errKeyInHistory, len(uses), keyID, strings.Join(names, ", "), more)
}
