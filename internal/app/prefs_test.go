package app

import (
	"net/http"
	"slices"
	"testing"

	"github.com/greenpoints/greenpoints/internal/consumers"
	"github.com/greenpoints/greenpoints/issuer/notices"
)

// TestPreferencesReachTheNotices: what a consumer sets through the API is
// what the reminders use (channels, quiet hours); other consumers' settings
// are not theirs to read; an erased person gets no channel at all.
func TestPreferencesReachTheNotices(t *testing.T) {
	t.Parallel()
	e := newConsumerEnv(t)
	alice, bob := e.token("demo-alice"), e.token("demo-bob")
	var got consumers.Preferences
	if r := e.do(http.MethodGet, "/v1/me/preferences", alice, nil); r.status != http.StatusOK {
		t.Fatalf("GET: %d %s", r.status, r.body)
	} else {
		r.decode(t, &got)
	}
	if got != consumers.DefaultPreferences() {
		t.Errorf("defaults: %+v", got)
	}
	want := consumers.Preferences{SMS: true, Push: false, QuietStart: "22:00", QuietEnd: "08:00", TimeZone: "Asia/Shanghai"}
	if r := e.do(http.MethodPut, "/v1/me/preferences", alice, want); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	for _, bad := range []map[string]any{
		{"sms": true, "push": true, "quietStart": "25:00", "quietEnd": "08:00", "timeZone": "Asia/Shanghai"},
		{"sms": true, "push": true, "quietStart": "22:00", "quietEnd": "08:00", "timeZone": "Mars/Olympus"},
		{"sms": true, "quietStart": "22:00", "quietEnd": "08:00", "timeZone": "Asia/Shanghai"}, // push missing
	} {
		if r := e.do(http.MethodPut, "/v1/me/preferences", alice, bad); r.status != http.StatusBadRequest {
			t.Errorf("PUT %v: %d %s", bad, r.status, r.body)
		}
	}
	e.do(http.MethodGet, "/v1/me/preferences", alice, nil).decode(t, &got)
	if got != want {
		t.Errorf("after PUT and refused PUTs: %+v, want %+v", got, want)
	}
	// Bob's token reads Bob's preferences, never Alice's.
	e.do(http.MethodGet, "/v1/me/preferences", bob, nil).decode(t, &got)
	if got != consumers.DefaultPreferences() {
		t.Errorf("bob sees %+v", got)
	}

	prefs := consumerPrefs{pool: e.a.pool, store: e.a.Consumers()}
	p, err := prefs.For(t.Context(), "demo-alice")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Channels, []string{notices.ChannelSMS}) || p.Quiet == nil || p.Quiet.Start != 22*60 || p.Quiet.End != 8*60 || p.Quiet.Zone != "Asia/Shanghai" {
		t.Errorf("notices see %+v (quiet %+v)", p, p.Quiet)
	}
	if p, err := prefs.For(t.Context(), "no-record-account"); err != nil || !slices.Equal(p.Channels, []string{notices.ChannelPush}) {
		t.Errorf("account without a record: %+v %v", p, err)
	}
	person, err := e.a.Consumers().ByAccount(t.Context(), "demo-alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Consumers().Erase(t.Context(), person.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := prefs.For(t.Context(), "demo-alice"); err != nil || len(p.Channels) != 0 {
		t.Errorf("erased person: %+v %v", p, err)
	}
}
