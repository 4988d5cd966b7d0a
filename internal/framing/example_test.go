package framing_test

import (
	"fmt"

	"github.com/tokenmeter/tokenmeter/internal/framing"
)

func ExampleSSE() {
	d := framing.NewSSE(1 << 16)
	show := func(e framing.Event) error {
		fmt.Printf("%q %q\n", e.Name, e.Data)
		return nil
	}
	// A body arrives split anywhere, even inside a CRLF.
	for _, chunk := range []string{"data: {\"a\"", ":1}\r", "\n\r\nevent: ping\ndata: x\nda", "ta: y\n\n: comment\n\ndata: [DONE]\n\n"} {
		if err := d.Feed([]byte(chunk), show); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("pending:", d.Pending())
	// Output:
	// "" "{\"a\":1}"
	// "ping" "x\ny"
	// "" "[DONE]"
	// pending: false
}
