package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/consumers"
)

// PreferencesStore keeps consumers' notification preferences
// (internal/consumers implements it).
type PreferencesStore interface {
	Preferences(ctx context.Context, account string) (consumers.Preferences, error)
	SetPreferences(ctx context.Context, account string, p consumers.Preferences) error
}

var errPreferencesUnavailable = apperr.New(apperr.Unavailable, "preferences_unavailable", "notification preferences are not available on this server")

// preferencesJSON is the body of PUT /v1/me/preferences: every field is
// required, so a client never resets one by leaving it out.
type preferencesJSON struct {
	SMS        *bool  `json:"sms" validate:"required"`
	Push       *bool  `json:"push" validate:"required"`
	QuietStart string `json:"quietStart" validate:"required"`
	QuietEnd   string `json:"quietEnd" validate:"required"`
	TimeZone   string `json:"timeZone" validate:"required"`
}

// preferences mounts GET and PUT /v1/me/preferences: how the consumer wants
// reminders and notices (SMS, app push) and their quiet hours. Reminders
// never move past the expiry they warn of, whatever the quiet hours.
func (h *meHandlers) preferences(g *gin.RouterGroup, store PreferencesStore) {
	g.GET("/preferences", func(c *gin.Context) {
		if store == nil {
			WriteError(c, errPreferencesUnavailable)
			return
		}
		p, err := store.Preferences(c, me(c).Subject)
		if err != nil {
			WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, p)
	})
	g.PUT("/preferences", func(c *gin.Context) {
		if store == nil {
			WriteError(c, errPreferencesUnavailable)
			return
		}
		var body preferencesJSON
		if err := BindJSON(c, &body); err != nil {
			WriteError(c, err)
			return
		}
		p := consumers.Preferences{SMS: *body.SMS, Push: *body.Push, QuietStart: body.QuietStart, QuietEnd: body.QuietEnd, TimeZone: body.TimeZone}
		if err := store.SetPreferences(c, me(c).Subject, p); err != nil {
			WriteError(c, err)
			return
		}
		c.JSON(http.StatusOK, p)
	})
}
