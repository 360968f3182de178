package handler_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/transport/ws"
)

// TestPagesChecked: NewServer refuses a page it could not serve as
// promised: a path that is no request path, a missing or multi-line
// content type (it would inject headers), a body over MaxPageBytes.
func TestPagesChecked(t *testing.T) {
	html := handler.Page{ContentType: "text/html", Body: []byte("<p>hi</p>")}
	tests := []struct {
		name  string
		pages map[string]handler.Page
		ok    bool
	}{
		{name: "index and another", pages: map[string]handler.Page{"/": html, "/about": html}, ok: true},
		{name: "largest body", pages: map[string]handler.Page{"/": {ContentType: "text/plain", Body: make([]byte, handler.MaxPageBytes)}}, ok: true},
		{name: "empty map: every plain GET is 404", pages: map[string]handler.Page{}, ok: true},
		{name: "relative path", pages: map[string]handler.Page{"index.html": html}},
		{name: "path with a query", pages: map[string]handler.Page{"/?a=1": html}},
		{name: "no content type", pages: map[string]handler.Page{"/": {Body: html.Body}}},
		{name: "header injection", pages: map[string]handler.Page{"/": {ContentType: "text/html\r\nSet-Cookie: a=1", Body: html.Body}}},
		{name: "body too large", pages: map[string]handler.Page{"/": {ContentType: "text/plain", Body: []byte(strings.Repeat("a", handler.MaxPageBytes+1))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := handler.NewServer(handler.Base{}, handler.WithWebSocket("127.0.0.1:0",
				handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}, Pages: tt.pages}))
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, handler.ErrBadOption)) {
				t.Fatalf("NewServer: %v; want ok %v (else ErrBadOption)", err, tt.ok)
			}
		})
	}
}
