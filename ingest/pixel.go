package ingest

import (
	"github.com/valyala/fasthttp"

	"github.com/beacongate/beacongate/ingest/record"
)

// endpointPixel answers GET and HEAD /i: the query string is the event.
var endpointPixel = endpoint{route: routePixel, kind: record.KindPixel, cors: true, answer: answerPixel}

// transparentGIF is the 43-byte 1x1 transparent GIF89a every pixel answer
// carries.
var transparentGIF = []byte{
	'G', 'I', 'F', '8', '9', 'a', // header
	0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, // 1x1, global color table of 2
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff, // black, white
	0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, // graphic control: index 0 transparent
	0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // image descriptor
	0x02, 0x02, 0x44, 0x01, 0x00, // LZW image data
	0x3b, // trailer
}

func answerPixel(sc *scratch) int {
	h := &sc.ctx.Response.Header
	h.SetContentTypeBytes(ctGIF)
	h.SetCanonical(hdrCacheCtl, valNoStore)
	sc.ctx.Response.SetBodyRaw(transparentGIF)
	return fasthttp.StatusOK
}
