// A bare Go net/http endpoint for bench/verify_throughput.py: it answers 200 "ok" to every request after
// reading its body, the same work as the bare aiohttp app beside it. The floor kubegate is compared with
// (issue 14): the stack of the peers (Flipt, kube-apiserver), with no verification work at all.
package main

import (
	"io"
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: bare-go PORT")
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Args[1], nil))
}
