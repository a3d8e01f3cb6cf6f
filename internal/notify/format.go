package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tokenwarden/tokenwarden/internal/credential"
)

// jsonMessage is the json format's body: the notification, plus a human summary.
type jsonMessage struct {
	credential.Notification
	Text string `json:"text"`
}

func jsonBody(n credential.Notification, note string, now time.Time) ([]byte, error) {
	return json.Marshal(jsonMessage{Notification: n, Text: Summary(n, note, now)})
}

// Summary is the one-paragraph human text of n: what happened, to which credential,
// since when, why, and for incidents and reminders what to do. note, if any, is
// appended (routing remarks).
func Summary(n credential.Notification, note string, now time.Time) string {
	parts := []string{headline(n) + " " + stateClause(n, now) + "."}
	if h := meaning(n); h != "" {
		parts = append(parts, h)
	}
	if r := reason(n); r != "" {
		parts = append(parts, "Reason: "+r+".")
	}
	if cmd := reseed(n); cmd != "" {
		parts = append(parts, "To reseed: "+cmd)
	}
	if note != "" {
		parts = append(parts, note)
	}
	return strings.Join(parts, " ")
}

// title is the short name of the event: "Incident", "Reminder 2", "Recovered".
func title(n credential.Notification) string {
	switch n.Event {
	case credential.EventIncident:
		return "Incident"
	case credential.EventReminder:
		if n.Reminder > 0 {
			return fmt.Sprintf("Reminder %d", n.Reminder)
		}
		return "Reminder"
	case credential.EventRecovered:
		return "Recovered"
	case credential.EventRetired:
		return "Retired"
	}
	return fmt.Sprintf("Notification %q", n.Event)
}

func headline(n credential.Notification) string {
	who := fmt.Sprintf("credential %s (%s)", n.CredentialID, n.Provider)
	state := string(n.State)
	switch n.Event {
	case credential.EventIncident:
		return "Incident: " + who + " is " + state
	case credential.EventReminder:
		return title(n) + ": " + who + " is still " + state
	case credential.EventRecovered:
		return "Recovered: " + who + " is " + state + " again"
	case credential.EventRetired:
		return "Retired: " + who + " is no longer refreshed; state " + state
	}
	return title(n) + ": " + who + " is " + state
}

// stateClause: "since 2026-11-26T19:13:48Z (for 2h15m)".
func stateClause(n credential.Notification, now time.Time) string {
	if n.Since.IsZero() {
		return "(since an unknown time)"
	}
	return fmt.Sprintf("since %s (for %s)", n.Since.UTC().Format(time.RFC3339), Duration(now.Sub(n.Since)))
}

// meaning explains the state of an incident to someone who does not know tokenwarden.
func meaning(n credential.Notification) string {
	if n.Event != credential.EventIncident && n.Event != credential.EventReminder {
		return ""
	}
	rounds := ""
	if n.Failures > 0 {
		rounds = fmt.Sprintf(" (%d rounds in a row)", n.Failures)
	}
	switch n.State {
	case credential.StateNeedsReauth:
		return "The provider rejected the grant: tokenwarden cannot refresh this credential until someone hands it new grant material."
	case credential.StateExpired:
		return "The access token has expired and refreshing keeps failing" + rounds + "; tokenwarden keeps retrying."
	case credential.StateDegraded:
		return "Refreshing keeps failing" + rounds + "; the access token is still valid and tokenwarden keeps retrying."
	}
	return ""
}

func reason(n credential.Notification) string {
	switch {
	case n.Code != "" && n.Reason != "" && n.Code != n.Reason:
		return n.Code + ": " + n.Reason
	case n.Code != "":
		return n.Code
	}
	return n.Reason
}

func reseed(n credential.Notification) string {
	if n.Event != credential.EventIncident && n.Event != credential.EventReminder {
		return ""
	}
	return n.ReseedCommand
}

// Duration is a short human duration: 45s, 12m, 2h15m, 3d4h.
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

// Slack Block Kit, as much of it as an incoming webhook needs.
type (
	slackMessage struct {
		Text   string       `json:"text"`
		Blocks []slackBlock `json:"blocks"`
	}
	slackBlock struct {
		Type     string      `json:"type"`
		Text     *slackText  `json:"text,omitempty"`
		Fields   []slackText `json:"fields,omitempty"`
		Elements []slackText `json:"elements,omitempty"`
	}
	slackText struct {
		Type  string `json:"type"` // plain_text or mrkdwn
		Text  string `json:"text"`
		Emoji bool   `json:"emoji,omitempty"`
	}
)

// Slack's limits: a header's text is at most 150 characters, a field's 2000.
const (
	slackHeaderMax = 150
	slackFieldMax  = 2000
)

var slackEmoji = map[string]string{
	credential.EventIncident:  ":rotating_light:",
	credential.EventReminder:  ":alarm_clock:",
	credential.EventRecovered: ":white_check_mark:",
	credential.EventRetired:   ":wastebasket:",
}

func slackBody(n credential.Notification, note string, now time.Time) ([]byte, error) {
	header := title(n) + ": " + n.CredentialID
	if e := slackEmoji[n.Event]; e != "" {
		header = e + " " + header
	}
	field := func(name, value string) slackText {
		return slackText{Type: "mrkdwn", Text: cut("*"+name+"*\n"+value, slackFieldMax)}
	}
	since := "unknown"
	if !n.Since.IsZero() {
		since = fmt.Sprintf("%s (for %s)", n.Since.UTC().Format(time.RFC3339), Duration(now.Sub(n.Since)))
	}
	fields := []slackText{
		field("Credential", "`"+escapeMrkdwn(n.CredentialID)+"`"),
		field("Provider", escapeMrkdwn(n.Provider)),
		field("State", escapeMrkdwn(string(n.State))),
		field("Since", since),
	}
	if r := reason(n); r != "" {
		fields = append(fields, field("Reason", escapeMrkdwn(r)))
	}
	if n.Failures > 0 {
		fields = append(fields, field("Failed rounds in a row", fmt.Sprint(n.Failures)))
	}
	summary := &slackText{Type: "mrkdwn", Text: escapeMrkdwn(headline(n) + ".")}
	if m := meaning(n); m != "" {
		summary.Text += " " + escapeMrkdwn(m)
	}
	blocks := []slackBlock{
		{Type: "header", Text: &slackText{Type: "plain_text", Text: cut(header, slackHeaderMax), Emoji: true}},
		{Type: "section", Text: summary, Fields: fields},
	}
	if cmd := reseed(n); cmd != "" {
		code := cut(strings.ReplaceAll(escapeMrkdwn(cmd), "```", "'''"), slackFieldMax-30)
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn",
			Text: "*To reseed:*\n```" + code + "```"}})
	}
	if note != "" {
		blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: escapeMrkdwn(note)}}})
	}
	return json.Marshal(slackMessage{Text: escapeMrkdwn(Summary(n, note, now)), Blocks: blocks})
}

// escapeMrkdwn escapes the three characters Slack's mrkdwn gives meaning to, so that a
// provider's description cannot mention <!channel> or disguise a link.
func escapeMrkdwn(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// cut shortens s to at most limit runes, marking the cut with an ellipsis.
func cut(s string, limit int) string {
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit-1]) + "…"
}
