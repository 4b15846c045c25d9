package extension

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// testExtPrefix marks the test binary running as an external extension: it
// is installed in the extensions directory under a name "testext-<mode>",
// and the mode picks a behaviour the samples don't have.
const testExtPrefix = "testext-"

// testExtMain is a small extension:
//
//	invokeonly  registers for INVOKE only, loops on /next
//	overhead    INVOKE+SHUTDOWN; spends 60ms after each INVOKE before /next
//	initerror   registers, reports init/error, then waits to be killed
//	flaky       initerror the first time in an environment's /tmp, then
//	            well behaved (a suppressed init that succeeds)
func testExtMain() int {
	name := filepath.Base(os.Args[0])
	mode := strings.TrimPrefix(name, testExtPrefix)
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2020-01-01/extension/"
	do := func(method, path, id string, hdr map[string]string, body string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if id != "" {
			req.Header.Set(hdrExtID, id)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b, nil
	}
	events := `{"events":["INVOKE","SHUTDOWN"]}`
	if mode == "invokeonly" {
		events = `{"events":["INVOKE"]}`
	}
	resp, b, err := do("POST", "register", "", map[string]string{hdrExtName: name}, events)
	if err != nil || resp.StatusCode != 200 {
		fmt.Fprintf(os.Stderr, "register: %v %s\n", err, b)
		return 1
	}
	id := resp.Header.Get(hdrExtID)
	if mode == "flaky" {
		// The marker lives in the extension's directory's parent, which a
		// test owns: the first init fails, the suppressed one succeeds.
		marker := filepath.Join(filepath.Dir(filepath.Dir(os.Args[0])), "flaky-failed-once")
		if _, err := os.Stat(marker); err != nil {
			os.WriteFile(marker, nil, 0o644)
			mode = "initerror"
		}
	}
	if mode == "initerror" {
		resp, b, err = do("POST", "init/error", id, map[string]string{hdrExtErrorType: "Extension.TestFailure"}, `{"errorMessage":"test","errorType":"Extension.TestFailure"}`)
		if err != nil || resp.StatusCode != 202 {
			fmt.Fprintf(os.Stderr, "init/error: %v %s\n", err, b)
			return 1
		}
		select {}
	}
	for {
		resp, b, err := do("GET", "event/next", id, nil, "")
		if err != nil || resp.StatusCode != 200 {
			fmt.Fprintf(os.Stderr, "next: %v %s\n", err, b)
			return 1
		}
		var ev ExtEvent
		_ = json.Unmarshal(b, &ev)
		fmt.Println("EVENT", ev.EventType)
		if strings.EqualFold(ev.EventType, EventShutdown) {
			return 0
		}
		if mode == "overhead" {
			time.Sleep(60 * time.Millisecond)
		}
	}
}
