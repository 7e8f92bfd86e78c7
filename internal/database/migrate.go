package database

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

// migrationFiles holds the schema, one NNN_name.sql file per version. tern
// applies them in numeric order, each in its own transaction, and the part
// below "---- create above / drop below ----" reverts it. Files are Go
// text/templates to tern, so "{{" must not appear in SQL.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records the applied version; schema-qualified as tern advises
// so that a search_path change cannot hide it.
const versionTable = "public.schema_version"

// Migrate brings the schema up to the newest embedded migration. Concurrent
// callers (several replicas starting at once) are safe: tern serialises them
// with an advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquiring connection: %w", err)
	}
	defer func() {
		if err != nil {
			// The session may still hold tern's advisory lock (the unlock
			// can fail with ctx), which would block every later migrator;
			// closing the connection releases it.
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Conn().Close(closeCtx)
			cancel()
		}
		conn.Release()
	}()

	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("migrate: preparing %s: %w", versionTable, err)
	}
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("migrate: loading migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// MigrationVersion returns the schema version of the database: the number
// of the last applied migration, 0 if none has been.
func MigrationVersion(ctx context.Context, pool *pgxpool.Pool) (int32, error) {
	var v int32
	err := pool.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&v)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return 0, nil // undefined_table: never migrated
	}
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}

// LatestVersion returns the version of the newest embedded migration: the
// version Migrate brings a database to. A readiness check compares it with
// MigrationVersion.
func LatestVersion() (int32, error) {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return 0, fmt.Errorf("reading migrations: %w", err)
	}
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, fmt.Errorf("reading migrations: %w", err)
	}
	return int32(len(names)), nil
}
