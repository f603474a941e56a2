package v1alpha1

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// MaxSpecBytes bounds the annotation we are willing to parse; the API server
// caps all annotations at 256 KiB, a fault spec is a few hundred bytes.
const MaxSpecBytes = 32 << 10

// ParseFaultSpec strictly parses YAML or JSON into a validated, normalized
// FaultSpec. Every problem is reported, each naming the field, the value and
// the allowed form.
//
// root is where the spec lives, e.g. AnnotationPath(AnnotationFaults), so that
// messages read "metadata.annotations[faultline.dev/faults].network[0].delay".
func ParseFaultSpec(data string, root *field.Path) (*FaultSpec, field.ErrorList) {
	if len(data) > MaxSpecBytes {
		return nil, field.ErrorList{field.TooLong(root, field.OmitValueType{}, MaxSpecBytes)}
	}
	if strings.TrimSpace(data) == "" {
		return nil, field.ErrorList{field.Required(root, "a FaultSpec with at least one of network, dns, clock, http")}
	}
	// YAMLToJSONStrict refuses duplicate keys; JSON is valid YAML, so one
	// path serves both.
	js, err := yaml.YAMLToJSONStrict([]byte(data))
	if err != nil {
		return nil, field.ErrorList{field.Invalid(root, field.OmitValueType{}, "not valid YAML or JSON: "+cleanYAMLError(err))}
	}
	var spec FaultSpec
	strict, err := sigsjson.UnmarshalStrict(js, &spec, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		// The decoder stops at the first wrong type; judge each part on
		// its own so that every problem is reported, with its rule index.
		if errs := partErrors(root, js); len(errs) > 0 {
			return nil, errs
		}
		return nil, field.ErrorList{decodeError(root, js, err)}
	}
	if len(strict) > 0 {
		var errs field.ErrorList
		for _, e := range strict {
			errs = append(errs, strictError(root, e))
		}
		return nil, errs
	}
	if errs := spec.Validate(root); len(errs) > 0 {
		return nil, errs
	}
	spec.Normalize()
	return &spec, nil
}

// partErrors decodes and validates each part of a spec that did not decode
// whole (every network and http rule, dns, clock, schedule) on its own, so
// that one wrong type does not hide the other problems.
func partErrors(root *field.Path, js []byte) field.ErrorList {
	var parts map[string]json.RawMessage
	if json.Unmarshal(js, &parts) != nil {
		return nil
	}
	child := func(name string) *field.Path { return childPath(root, name) }
	var errs field.ErrorList
	errs = append(errs, listPart(child("network"), parts["network"], (*NetworkRule).validate)...)
	errs = append(errs, part(child("dns"), parts["dns"], (*DNSFault).validate)...)
	errs = append(errs, part(child("clock"), parts["clock"], (*ClockFault).validate)...)
	errs = append(errs, listPart(child("http"), parts["http"], (*HTTPFault).validate)...)
	errs = append(errs, part(child("schedule"), parts["schedule"], (*Schedule).validate)...)
	return errs
}

// part decodes one part strictly and validates it; absent is no error.
func part[T any](p *field.Path, raw json.RawMessage, validate func(*T, *field.Path) field.ErrorList) field.ErrorList {
	if raw == nil {
		return nil
	}
	var v T
	if _, err := sigsjson.UnmarshalStrict(raw, &v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields); err != nil {
		return field.ErrorList{decodeError(p, raw, err)}
	}
	return validate(&v, p)
}

// listPart is part for a list, element by element, with its index.
func listPart[T any](p *field.Path, raw json.RawMessage, validate func(*T, *field.Path) field.ErrorList) field.ErrorList {
	if raw == nil {
		return nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		var none []T
		if _, err := sigsjson.UnmarshalStrict(raw, &none); err != nil {
			return field.ErrorList{decodeError(p, raw, err)}
		}
		return nil
	}
	var errs field.ErrorList
	for i, item := range items {
		errs = append(errs, part(p.Index(i), item, validate)...)
	}
	return errs
}

// decodeError turns a JSON type mismatch into a message that names the field
// the way a user wrote it ("network[0].delay"), not the Go struct.
func decodeError(root *field.Path, js []byte, err error) *field.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			// The part itself has the wrong shape: say what it must be.
			t := te.Type
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() == reflect.Slice {
				return field.Invalid(root, field.OmitValueType{}, fmt.Sprintf("got %s, must be a list", article(te.Value)))
			}
			if t.Kind() != reflect.Struct {
				t = reflect.TypeFor[FaultSpec]()
			}
			return field.Invalid(root, field.OmitValueType{}, fmt.Sprintf("got %s, must be a mapping with keys %s", article(te.Value), allowedKeys(t)))
		}
		var bad any = field.OmitValueType{}
		if v := scalarBefore(js, te.Offset); v != "" {
			bad = v
		}
		return field.Invalid(childPath(root, te.Field), bad,
			fmt.Sprintf("got %s, must be %s", article(te.Value), goTypeName(te.Type)))
	}
	return field.Invalid(root, field.OmitValueType{}, strings.TrimPrefix(err.Error(), "json: "))
}

// scalarBefore returns the number or boolean literal that ends at offset in
// js, so a type error can quote the value the user wrote.
func scalarBefore(js []byte, offset int64) string {
	if offset <= 0 || offset > int64(len(js)) {
		return ""
	}
	end := int(offset)
	start := end
	for start > 0 && strings.IndexByte("0123456789.eE+-truefalsn", js[start-1]) >= 0 {
		start--
	}
	return string(js[start:end])
}

// strictError reports an unknown or duplicate field with the keys that are
// allowed at that level, since a typo is the usual cause.
func strictError(root *field.Path, e error) *field.Error {
	var fe sigsjson.FieldError
	if !errors.As(e, &fe) {
		return field.Invalid(root, field.OmitValueType{}, strings.TrimPrefix(e.Error(), "json: "))
	}
	p := childPath(root, fe.FieldPath())
	if strings.Contains(e.Error(), "duplicate field") {
		return field.Duplicate(p, field.OmitValueType{})
	}
	return field.Forbidden(p, "unknown field; allowed here: "+allowedKeys(typeAt(fe.FieldPath())))
}

func childPath(root *field.Path, dotted string) *field.Path {
	if root == nil {
		return field.NewPath(dotted)
	}
	return root.Child(dotted)
}

// typeAt walks "network[0].dealy" down FaultSpec and returns the struct type
// that holds the last element.
func typeAt(path string) reflect.Type {
	t := reflect.TypeFor[FaultSpec]()
	segs := strings.Split(path, ".")
	for _, seg := range segs[:len(segs)-1] {
		if i := strings.IndexByte(seg, '['); i >= 0 {
			seg = seg[:i]
		}
		f, ok := jsonField(t, seg)
		if !ok {
			return t
		}
		t = f.Type
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
	}
	return t
}

func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func allowedKeys(t reflect.Type) string {
	if t.Kind() != reflect.Struct {
		return "none"
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return strings.Join(keys, ", ")
}

func article(jsonKind string) string {
	switch jsonKind {
	case "array":
		return "a list"
	case "object":
		return "a mapping"
	case "":
		return "an empty value"
	default:
		return "a " + jsonKind
	}
}

func goTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint16, reflect.Uint32:
		return "a whole number, such as 5"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	if t.PkgPath() != "" && t.Name() != "string" {
		return "a string" // an enum such as direction
	}
	return "a string with its unit, such as \"100ms\", \"5%\" or \"200ppm\""
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = strings.TrimPrefix(s, "yaml: ")
	return s
}

// AnnotationPath is the field path of a pod annotation, for error messages.
func AnnotationPath(key string) *field.Path {
	return field.NewPath("metadata", "annotations").Key(key)
}
