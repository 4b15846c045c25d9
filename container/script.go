package container

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// scriptPATH is where `#!/usr/bin/env PROG` finds PROG: Lambda's PATH
// without its /opt directories, whose files no layer brings here.
var scriptPATH = []string{"/usr/local/bin", "/usr/bin", "/bin"}

// ScriptInterpreter reads the #! line of p: the interpreter and its
// arguments. ok is false when p is not a script.
func ScriptInterpreter(p string) (interp string, args []string, ok bool, err error) {
	head, err := readHead(p, 256)
	if err != nil {
		return "", nil, false, err
	}
	if !bytes.HasPrefix(head, []byte("#!")) {
		return "", nil, false, nil
	}
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) == 0 {
		return "", nil, true, fmt.Errorf("%s: a script with an empty #! line", p)
	}
	return f[0], f[1:], true, nil
}

// envProgram is PROG of "#!/usr/bin/env [-S] [-i] PROG ...", or "" when the
// interpreter is not env.
func envProgram(interp string, args []string) string {
	if path.Base(interp) != "env" {
		return ""
	}
	for _, a := range args {
		if a == "-S" || a == "--split-string" {
			continue
		}
		if strings.HasPrefix(a, "-S") { // -Sbash -e
			return strings.Fields(a[2:])[0]
		}
		if strings.HasPrefix(a, "-") || strings.Contains(a, "=") {
			continue
		}
		return strings.Fields(a)[0]
	}
	return ""
}

// lookScriptProgram finds PROG as env would on scriptPATH, inside root
// ("" is the host's /); it returns the path inside.
func lookScriptProgram(prog, root string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	for _, d := range scriptPATH {
		inside := path.Join(d, prog)
		if st, err := os.Stat(filepath.Join(root, inside)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return inside, nil
		}
	}
	return "", fmt.Errorf("%s is not in %s", prog, strings.Join(scriptPATH, ":"))
}

// ResolveScript follows the #! chain of the script p (a host file) to the
// ELF program that finally runs it: the interpreter, or for
// `#!/usr/bin/env PROG` the PROG env finds. Paths are inside root ("" is
// the host's /); host is that program's file on this machine. A chain that
// does not end in an existing executable is bad input.
func ResolveScript(p, root string) (inside, host string, err error) {
	cur := p
	for depth := 0; depth < 4; depth++ {
		interp, args, ok, err := ScriptInterpreter(cur)
		if err != nil {
			return "", "", badInput("%v", err)
		}
		if !ok {
			if depth == 0 {
				return "", "", badInput("%s is not a #! script", p)
			}
			return inside, cur, nil
		}
		inside = interp
		if prog := envProgram(interp, args); prog != "" {
			if inside, err = lookScriptProgram(prog, root); err != nil {
				return "", "", badInput("%s: #!%s %s: %v", p, interp, strings.Join(args, " "), err)
			}
		}
		cur = filepath.Join(root, inside)
		if st, err := os.Stat(cur); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			where := "on this host"
			if root != "" {
				where = "under " + root
			}
			return "", "", badInput("%s: its interpreter %s is not an executable file %s", p, inside, where)
		}
	}
	return "", "", badInput("%s: #! interpreter chain too deep", p)
}
