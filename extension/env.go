package extension

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// runtimeOnlyVars are set for the runtime and never for extensions, as in
// Lambda. Anything starting with "_" is runtime-only too.
var runtimeOnlyVars = map[string]bool{
	"AWS_EXECUTION_ENV":          true,
	"AWS_LAMBDA_LOG_GROUP_NAME":  true,
	"AWS_LAMBDA_LOG_STREAM_NAME": true,
	"LAMBDA_TASK_ROOT":           true,
	"LAMBDA_RUNTIME_DIR":         true,
}

// envFor builds the environment of the runtime (runtime=true) or of an
// extension. Nothing is inherited from the host: a Lambda sandbox starts from
// a clean environment. customer entries (K=V) come last and win, except that
// extensions never see "_"-prefixed or runtime-only variables.
func envFor(fn FunctionConfig, apiAddr string, customer []string, extra []string, runtime bool) []string {
	m := map[string]string{
		"AWS_REGION":                      fn.Region,
		"AWS_DEFAULT_REGION":              fn.Region,
		"AWS_LAMBDA_FUNCTION_NAME":        fn.FunctionName,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(fn.MemoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION":     fn.Version,
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_RUNTIME_API":          apiAddr,
		"TZ":                              ":UTC",
		"LANG":                            "en_US.UTF-8",
		"PATH":                            "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LD_LIBRARY_PATH":                 "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
	}
	if runtime {
		m["_HANDLER"] = fn.Handler
		m["AWS_EXECUTION_ENV"] = "AWS_Lambda_provided.al2023"
		m["AWS_LAMBDA_LOG_GROUP_NAME"] = "/aws/lambda/" + fn.FunctionName
		m["AWS_LAMBDA_LOG_STREAM_NAME"] = time.Now().UTC().Format("2006/01/02") + "/[" + fn.Version + "]" + randHex(16)
		m["LAMBDA_TASK_ROOT"] = "/var/task"
		m["LAMBDA_RUNTIME_DIR"] = "/var/runtime"
	}
	for _, kv := range append(append([]string(nil), customer...), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		if !runtime && (strings.HasPrefix(k, "_") || runtimeOnlyVars[k]) {
			continue
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// ValidateEnv checks customer K=V entries, so a typo is reported up front.
func ValidateEnv(kvs []string) error {
	for _, kv := range kvs {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\n\x00") {
			return fmt.Errorf("environment entry %q: want KEY=VALUE with a non-empty KEY", kv)
		}
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newTraceID returns an X-Ray trace header value: Root, Parent, Sampled.
func newTraceID(now time.Time) string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=1", now.Unix(), randHex(24), randHex(16))
}
