package coldstart

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/initprof/initprof/profile/orderfile"
)

// OrderOptions say how an orderfile is made from a series of cold starts.
type OrderOptions struct {
	// Format is the ordering file's format (lld, gnu or list).
	Format orderfile.Format
	// Output is the file the ordering file will be written to: the build
	// advice names it.
	Output string
	// Symbols, when set, is an unstripped build of the same code whose
	// symbols name the pages a stripped extension touched.
	Symbols string
	// Extend, when set, is a previous orderfile (lld format) of this code:
	// its symbols come first, then the ones this profile adds.
	Extend string
	// MinRuns keeps symbols touched in at least this many runs; 0: more
	// than half of them.
	MinRuns int
}

// OrderArgs checks an orderfile command line before anything else: one
// extension, an output file, a known format and no more --min-runs than
// runs. It returns the format; its errors are of kind BadInput.
func OrderArgs(args []string, output, format string, minRuns, runs int) (orderfile.Format, error) {
	if len(args) != 1 {
		return "", kindErr(BadInput, fmt.Errorf("orderfile takes one extension, %d given; usage: initprof orderfile [flags] -o FILE EXTENSION", len(args)))
	}
	if output == "" {
		return "", kindErr(BadInput, errors.New("-o FILE is required: where to write the ordering file"))
	}
	f, err := orderfile.ParseFormat(format)
	if err != nil {
		return "", kindErr(BadInput, fmt.Errorf("--format: %v", err))
	}
	if minRuns > runs {
		return "", kindErr(BadInput, fmt.Errorf("--min-runs %d: more than the %d runs (-n)", minRuns, runs))
	}
	return f, nil
}

// OrderPlan is an orderfile's inputs, read and checked before the first
// cold start: the symbols of the binary, the previous orderfile, and the
// advice on how to build with it.
type OrderPlan struct {
	o    OrderOptions
	src  string // the binary the symbols come from
	syms *orderfile.Symbols
	prev []byte
	// Warn, when set, says why the ordering file may not take effect as
	// built (say, a C binary without -ffunction-sections for gnu).
	Warn string
	// How is the build flags that apply the ordering file.
	How string
}

// PlanOrder reads the symbols of ext (or of o.Symbols) and the orderfile
// o.Extend names. Errors are of kind BadInput: a stripped binary without
// --symbols, a Go binary (the Go linker takes no ordering file), an
// unreadable file.
func PlanOrder(ext string, o OrderOptions) (*OrderPlan, error) {
	p := &OrderPlan{o: o, src: ext}
	if o.Symbols != "" {
		p.src = o.Symbols
	}
	syms, err := orderfile.ReadSymbols(p.src)
	switch {
	case errors.Is(err, orderfile.ErrNoSymbols) && o.Symbols == "":
		return nil, kindErr(BadInput, fmt.Errorf("%s: %v; or give --symbols with an unstripped build of the same code", p.src, err))
	case err != nil:
		return nil, kindErr(BadInput, fmt.Errorf("%s: %v", p.src, err))
	case syms.Lang == "go":
		return nil, kindErr(BadInput, fmt.Errorf("%s: %s", p.src, syms.Why))
	}
	p.syms = syms
	if o.Extend != "" {
		if p.prev, err = os.ReadFile(o.Extend); err != nil {
			return nil, kindErr(BadInput, fmt.Errorf("--extend: %v", err))
		}
	}
	p.Warn, p.How = syms.Advice(o.Output, o.Format)
	return p, nil
}

// Make orders the symbols of extension ext by the first touches of the
// runs of s (Series.SymbolTouches), extends the previous orderfile when
// the plan has one, and returns the result and the ordering file's bytes.
// An extension that touched none of the symbols is an error.
func (p *OrderPlan) Make(s *Series, ext string) (*orderfile.Result, []byte, error) {
	runs, err := s.SymbolTouches(ext, p.o.Symbols)
	if err != nil {
		return nil, nil, err
	}
	res := orderfile.Make(runs, p.syms, p.o.MinRuns)
	if p.o.Extend != "" {
		if err := res.Extend(bytes.NewReader(p.prev), p.syms); err != nil {
			return nil, nil, kindErr(BadInput, fmt.Errorf("--extend %s: %v", p.o.Extend, err))
		}
	}
	if len(res.Kept) == 0 {
		return nil, nil, fmt.Errorf("init touched none of %s's symbols in %d of %d runs: nothing to order", p.src, res.MinRuns, res.Runs)
	}
	var b bytes.Buffer
	if err := orderfile.Write(&b, p.o.Format, res.Kept); err != nil {
		return nil, nil, err
	}
	return res, b.Bytes(), nil
}
