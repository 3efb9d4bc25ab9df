package alloc

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Dim is one named dimension of an Extent.
type Dim struct {
	Label string
	Size  int
}

// Extent is an ordered list of named dimensions. Ranks are assigned in
// row-major order: the last dimension varies fastest. The zero Extent is
// Unity: no dimensions and exactly one rank.
//
// Extents are immutable values; they travel in messages by their text form.
type Extent struct {
	dims []Dim
}

// maxRanks keeps rank arithmetic inside an int on every platform.
const maxRanks = math.MaxInt32

// NewExtent builds an extent from dims in order. Labels must be identifiers
// (a letter or '_' first, then letters, digits or '_'), distinct, and sizes
// at least 1.
func NewExtent(dims ...Dim) (Extent, error) {
	seen := make(map[string]bool, len(dims))
	total := 1
	for _, d := range dims {
		if !validLabel(d.Label) {
			return Extent{}, fmt.Errorf("alloc: invalid dimension label %q: want a letter or '_' followed by letters, digits or '_'", d.Label)
		}
		if seen[d.Label] {
			return Extent{}, fmt.Errorf("alloc: duplicate dimension label %q", d.Label)
		}
		seen[d.Label] = true
		if d.Size < 1 {
			return Extent{}, fmt.Errorf("alloc: dimension %q has size %d, want at least 1", d.Label, d.Size)
		}
		if total > maxRanks/d.Size {
			return Extent{}, fmt.Errorf("alloc: extent has more than %d ranks", maxRanks)
		}
		total *= d.Size
	}
	return Extent{dims: append([]Dim(nil), dims...)}, nil
}

// MustExtent is NewExtent for extents known at compile time; it takes
// alternating labels and sizes: MustExtent("hosts", 2, "gpus", 8).
func MustExtent(labelsAndSizes ...any) Extent {
	if len(labelsAndSizes)%2 != 0 {
		panic("alloc: MustExtent wants label, size pairs")
	}
	dims := make([]Dim, 0, len(labelsAndSizes)/2)
	for i := 0; i < len(labelsAndSizes); i += 2 {
		label, ok1 := labelsAndSizes[i].(string)
		size, ok2 := labelsAndSizes[i+1].(int)
		if !ok1 || !ok2 {
			panic("alloc: MustExtent wants string label, int size pairs")
		}
		dims = append(dims, Dim{label, size})
	}
	e, err := NewExtent(dims...)
	if err != nil {
		panic(err)
	}
	return e
}

// Unity is the extent of a single rank with no dimensions.
func Unity() Extent { return Extent{} }

func validLabel(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

// Dims returns a copy of the dimensions in order.
func (e Extent) Dims() []Dim { return append([]Dim(nil), e.dims...) }

// NumDims is the number of dimensions.
func (e Extent) NumDims() int { return len(e.dims) }

// Labels returns the dimension labels in order.
func (e Extent) Labels() []string {
	out := make([]string, len(e.dims))
	for i, d := range e.dims {
		out[i] = d.Label
	}
	return out
}

// Sizes returns the dimension sizes in order.
func (e Extent) Sizes() []int {
	out := make([]int, len(e.dims))
	for i, d := range e.dims {
		out[i] = d.Size
	}
	return out
}

// Size returns the size of the dimension labelled label.
func (e Extent) Size(label string) (int, bool) {
	for _, d := range e.dims {
		if d.Label == label {
			return d.Size, true
		}
	}
	return 0, false
}

// NumRanks is the product of the sizes (1 for Unity).
func (e Extent) NumRanks() int {
	n := 1
	for _, d := range e.dims {
		n *= d.Size
	}
	return n
}

// Equal reports whether e and o have the same labels and sizes in the same order.
func (e Extent) Equal(o Extent) bool {
	if len(e.dims) != len(o.dims) {
		return false
	}
	for i := range e.dims {
		if e.dims[i] != o.dims[i] {
			return false
		}
	}
	return true
}

// Concat appends o's dimensions after e's. Labels must stay distinct.
func (e Extent) Concat(o Extent) (Extent, error) {
	return NewExtent(append(e.Dims(), o.dims...)...)
}

// PointOfRank returns the coordinates of rank r.
func (e Extent) PointOfRank(r int) (Point, error) {
	if r < 0 || r >= e.NumRanks() {
		return Point{}, fmt.Errorf("alloc: rank %d out of range for extent %s (%d ranks)", r, e, e.NumRanks())
	}
	coords := make([]int, len(e.dims))
	for i := len(e.dims) - 1; i >= 0; i-- {
		coords[i] = r % e.dims[i].Size
		r /= e.dims[i].Size
	}
	return Point{extent: e, coords: coords}, nil
}

// RankOf returns the rank of p, which must belong to an equal extent.
func (e Extent) RankOf(p Point) (int, error) {
	if !e.Equal(p.extent) {
		return 0, fmt.Errorf("alloc: point %s is not in extent %s", p, e)
	}
	return e.rankOfCoords(p.coords)
}

// RankOfCoords returns the rank of the given coordinates, one per dimension.
func (e Extent) RankOfCoords(coords ...int) (int, error) { return e.rankOfCoords(coords) }

func (e Extent) rankOfCoords(coords []int) (int, error) {
	if len(coords) != len(e.dims) {
		return 0, fmt.Errorf("alloc: %d coordinates for extent %s with %d dimensions", len(coords), e, len(e.dims))
	}
	r := 0
	for i, d := range e.dims {
		if coords[i] < 0 || coords[i] >= d.Size {
			return 0, fmt.Errorf("alloc: coordinate %s=%d out of range [0, %d)", d.Label, coords[i], d.Size)
		}
		r = r*d.Size + coords[i]
	}
	return r, nil
}

// String gives the text form: "{replicas: 4}", "{hosts: 2, gpus: 8}", "{}".
func (e Extent) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, d := range e.dims {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.Label)
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(d.Size))
	}
	b.WriteByte('}')
	return b.String()
}

// MarshalText and UnmarshalText let extents travel in msgpack and JSON by
// their text form.
func (e Extent) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText parses the text form.
func (e *Extent) UnmarshalText(b []byte) error {
	p, err := ParseExtent(string(b))
	if err != nil {
		return err
	}
	*e = p
	return nil
}

// ParseExtent parses "{hosts: 2, gpus: 8}" and the shorthand "hosts=2,gpus=8".
// "{}" and "" are Unity.
func ParseExtent(s string) (Extent, error) {
	body := strings.TrimSpace(s)
	braced := strings.HasPrefix(body, "{")
	if braced {
		if !strings.HasSuffix(body, "}") {
			return Extent{}, fmt.Errorf("alloc: invalid extent %q: unclosed '{'", s)
		}
		body = strings.TrimSpace(body[1 : len(body)-1])
	}
	if body == "" {
		return Unity(), nil
	}
	var dims []Dim
	for _, part := range strings.Split(body, ",") {
		label, size, ok := strings.Cut(part, ":")
		if !ok {
			label, size, ok = strings.Cut(part, "=")
		}
		if !ok {
			return Extent{}, fmt.Errorf("alloc: invalid extent %q: %q is not label: size or label=size", s, strings.TrimSpace(part))
		}
		label, size = strings.TrimSpace(label), strings.TrimSpace(size)
		n, err := strconv.Atoi(size)
		if err != nil {
			return Extent{}, fmt.Errorf("alloc: invalid extent %q: size of %q: %w", s, label, errors.Unwrap(err))
		}
		dims = append(dims, Dim{label, n})
	}
	e, err := NewExtent(dims...)
	if err != nil {
		return Extent{}, fmt.Errorf("alloc: invalid extent %q: %w", s, err)
	}
	return e, nil
}

// Point is one rank's coordinates within an extent.
type Point struct {
	extent Extent
	coords []int
}

// Extent is the extent the point belongs to.
func (p Point) Extent() Extent { return p.extent }

// Coords returns a copy of the coordinates, one per dimension.
func (p Point) Coords() []int { return append([]int(nil), p.coords...) }

// Coord returns the coordinate along the dimension labelled label.
func (p Point) Coord(label string) (int, bool) {
	for i, d := range p.extent.dims {
		if d.Label == label {
			return p.coords[i], true
		}
	}
	return 0, false
}

// Rank is the point's row-major rank.
func (p Point) Rank() int {
	r, _ := p.extent.rankOfCoords(p.coords)
	return r
}

// String gives "a=1/2,b=0/3": each coordinate over its dimension's size.
// The single point of Unity prints as "".
func (p Point) String() string {
	var b strings.Builder
	for i, d := range p.extent.dims {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d/%d", d.Label, p.coords[i], d.Size)
	}
	return b.String()
}
