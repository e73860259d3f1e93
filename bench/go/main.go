// The Go net/http reference for `npm run bench`: the server the article starts
// from, in Go's standard library only. It answers every path with the same six
// lines (or those fields as one JSON object for `Accept: application/json`),
// reads nothing, limits nothing and logs nothing, like bench/article.mjs does
// for node:http. The bench builds it into its temporary directory and runs it
// with GOMAXPROCS=1 on one pinned CPU, so the figures are per core.
//
//	go run . 8082   (listens on 127.0.0.1:8082)
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
)

type fields struct {
	RemoteAddr    string
	Method        string
	RequestURI    string
	Proto         string
	ContentLength int64
	Headers       http.Header
}

func answer(w http.ResponseWriter, r *http.Request) {
	f := fields{r.RemoteAddr, r.Method, r.RequestURI, r.Proto, r.ContentLength, r.Header}
	if r.Header.Get("Accept") == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f)
		return
	}
	headers, _ := json.Marshal(f.Headers)
	var b strings.Builder
	b.WriteString("RemoteAddr: " + f.RemoteAddr + "\n")
	b.WriteString("Method: " + f.Method + "\n")
	b.WriteString("RequestURI: " + f.RequestURI + "\n")
	b.WriteString("Proto: " + f.Proto + "\n")
	b.WriteString("ContentLength: " + strconv.FormatInt(f.ContentLength, 10) + "\n")
	b.WriteString("Headers: " + string(headers) + "\n")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

func main() {
	port := "8082"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	http.HandleFunc("/", answer)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
