package demo

import (
	_ "embed" // the chat page

	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/transport/ws"
)

//go:embed chat.html
var chatHTML []byte

// ChatPage is the demo servers' page at / on the -ws listener: plain HTML
// and JavaScript, no external resources, that opens ws://<same host>/ws,
// shows every text message received as a line and sends each line typed as
// one text message. With -codec line it is a chat client of cmd/broadcast's
// room, beside nc on the TCP port.
var ChatPage = handler.Page{ContentType: "text/html; charset=utf-8", Body: chatHTML}

// WebSocketConfig is the demo servers' -ws listener: the endpoint /ws,
// messages up to maxFrame (-max-frame: a message holds one frame, and a
// line's message is its body, which -max-frame bounds too), and ChatPage
// at /.
func WebSocketConfig(maxFrame int) handler.WebSocketConfig {
	return handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}, MaxMessage: maxFrame,
		Pages: map[string]handler.Page{"/": ChatPage}}
}
