package events

import (
	"embed"
	"io/fs"
)

// schemaFiles holds the JSON Schemas (draft 2020-12) of every event type and
// of the result. It is read-only.
//
//go:embed schema/*.json
var schemaFiles embed.FS

// SchemaBaseURI is the base of the schemas' $id values; a file's $id is
// SchemaBaseURI + its name. The $ids are identifiers, not download
// locations: the files ship in the repository under events/schema/.
const SchemaBaseURI = "https://github.com/authflow/authflow/events/schema/"

// SchemaFS returns the schemas: event.json (any event, dispatching on
// type), one <type>.json per event type without the "authflow." prefix
// (e.g. employee.joined.v1.json), result.json, notification.json, and
// defs.json (shared definitions the others reference).
func SchemaFS() fs.FS {
	sub, _ := fs.Sub(schemaFiles, "schema") // fs.Sub fails only for an invalid path name; "schema" is valid
	return sub
}

// SchemaFile returns the schema file name for an event type, e.g.
// "employee.joined.v1.json" for "authflow.employee.joined.v1".
func SchemaFile(typ string) string {
	const prefix = "authflow."
	if len(typ) > len(prefix) && typ[:len(prefix)] == prefix {
		typ = typ[len(prefix):]
	}
	return typ + ".json"
}
