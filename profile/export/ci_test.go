package export

import (
	"errors"
	"testing"
)

func TestCIParse(t *testing.T) {
	for _, tc := range []struct {
		ci    CI
		usage bool
	}{
		{CI{Format: "text"}, false},
		{CI{Format: "md", FailIf: "init_duration>+5%"}, false},
		{CI{Format: "html"}, true},
		{CI{Format: "json", FailIf: "init_duration"}, true},
	} {
		err := tc.ci.Parse()
		if (err != nil) != tc.usage || (err != nil && !errors.Is(err, ErrUsage)) {
			t.Errorf("%+v: %v", tc.ci, err)
		}
	}
	c := CI{Format: "markdown", FailIf: "init_duration>+5%,x:load>+1ms"}
	if err := c.Parse(); err != nil || len(c.Gates) != 2 || !c.Markdown() {
		t.Errorf("%+v: %v", c, err)
	}
}
