package localnode

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// ImageTarballs reads the index `make images` writes (bin/images/images.json,
// image name -> tarball) and returns the tarballs in a stable order.
func ImageTarballs(index string) ([]string, error) {
	b, err := os.ReadFile(index)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (run make images)", index, err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	out := make([]string, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}
