package database

// MigrationFiles exposes the embedded migrations to the external tests,
// which cannot live in this package: pgtest imports it.
var MigrationFiles = migrationFiles
