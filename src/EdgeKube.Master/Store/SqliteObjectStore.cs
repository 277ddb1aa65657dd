using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace EdgeKube.Master.Store;

/// <summary>The master's <see cref="IObjectStore"/>: one SQLite file (WAL, synchronous=FULL), one writer; reads are served from the committed rows held in memory.</summary>
/// <remarks>
/// <para>Schema: <c>objects(resource, namespace, name, rv, json)</c> keyed by the first three, and
/// <c>store_info</c>, one row holding the resourceVersion counter. Each write bumps the counter and changes
/// the object in one transaction, so the counter and the data never disagree, and resourceVersions keep
/// increasing across restarts.</para>
/// <para>synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss. The objects would
/// roll back with the counter, so nothing would be torn, but resourceVersions clients were already given
/// would be handed out again for different contents: a client's stale precondition could then pass, and a
/// watch resumed from such a version would miss changes. Boards lose power; every write is
/// acknowledged only after its commit's fsync, and writes waiting meanwhile share the next commit (group
/// commit, see WriteAsync), so a busy master pays one fsync per batch, not per write.</para>
/// <para>Watch history lives in memory (<see cref="WatchHub"/>) and starts empty at open: a watch from
/// before the restart gets Expired and re-lists, as after an etcd compaction.</para>
/// <para>Corruption: a file that is not a SQLite database, or fails <c>PRAGMA quick_check</c>, makes
/// <see cref="OpenAsync(string, TimeProvider?, CancellationToken)"/> throw <see cref="InvalidDataException"/>
/// naming the file; the store never deletes or repairs it (it is the cluster's state). A row whose JSON
/// is unreadable makes Get and List of it throw <see cref="InvalidDataException"/> naming the key, as the
/// API server fails on an undecodable object; other objects stay readable, and Update or Delete of the
/// bad key still work (they only need its resourceVersion), so it can be repaired or removed.</para>
/// </remarks>
public sealed class SqliteObjectStore : IObjectStore
{
    private const int SchemaVersion = 1;
    private const int SqliteCorrupt = 11;
    private const int SqliteNotADatabase = 26;

    // Every write goes through the one writer connection, in turn.
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SqliteConnection _writer;
    private readonly string _path;
    private readonly WatchHub _hub;

    // Every stored row, by resource and then (namespace, name) in the order SQLite's ORDER BY gives, as the
    // UTF-8 JSON last committed. The master is the file's only writer, so this copy is the file's content:
    // Get and List are served from it (as the API server serves them from its watch cache) instead of
    // reading and decoding the file for every relist of every controller. Guarded by _rowsLock; changed
    // only by the writer, after its commit, together with _resourceVersion.
    private readonly Dictionary<string, SortedDictionary<(string Namespace, string Name), Row>> _rows;
    private readonly Lock _rowsLock = new();

    // Writes waiting for the next group commit, and the rows the batch being committed has written so far.
    private readonly Queue<PendingWrite> _queue = new();
    private Dictionary<ObjectKey, Row?>? _uncommitted;
    private long _resourceVersion;
    private volatile bool _disposed;

    private SqliteObjectStore(SqliteConnection writer, long resourceVersion, StoreLimits limits, Dictionary<string, SortedDictionary<(string Namespace, string Name), Row>> rows)
    {
        _writer = writer;
        _rows = rows;
        _path = writer.DataSource;
        _resourceVersion = resourceVersion;
        _hub = new WatchHub(resourceVersion, limits);
    }

    public long CurrentResourceVersion => Volatile.Read(ref _resourceVersion);

    internal int WatcherCount => _hub.WatcherCount;

    /// <summary>
    /// Opens the store at <paramref name="path"/>, creating the file (and its directory) and schema when missing.
    /// <paramref name="time"/> only stamps when the store was created; nothing in the store depends on the clock.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not an EdgeKube store, is corrupt, or was written by a newer schema.</exception>
    /// <exception cref="IOException">The file cannot be opened (permissions, missing device).</exception>
    public static Task<SqliteObjectStore> OpenAsync(string path, TimeProvider? time = null, CancellationToken ct = default) =>
        OpenAsync(path, StoreLimits.Default, time, ct);

    internal static Task<SqliteObjectStore> OpenAsync(string path, StoreLimits limits, TimeProvider? time = null, CancellationToken ct = default) =>
        StoreTask.Run(() => Open(path, limits, time ?? TimeProvider.System), ct);

    public Task<JsonObject?> GetAsync(ObjectKey key, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        return StoreTask.Run(() =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Row? row;
            lock (_rowsLock)
            {
                row = RowOf(key);
            }

            return row is null ? null : ParseStored(key, row);
        }, cancellationToken);
    }

    public Task<StoreList> ListAsync(string resource, string? ns, CancellationToken cancellationToken = default) =>
        ListAsync(resource, ns, static _ => true, cancellationToken);

    public Task<IReadOnlyList<(ObjectKey Key, long ResourceVersion)>> ListVersionsAsync(string resource, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_rowsLock)
        {
            IReadOnlyList<(ObjectKey, long)> versions = !_rows.TryGetValue(resource, out var all) ? []
                : [.. all.Select(r => (new ObjectKey(resource, r.Key.Namespace, r.Key.Name), r.Value.ResourceVersion))];
            return Task.FromResult(versions);
        }
    }

    public Task<StoreList> ListAsync(string resource, string? ns, StoredJsonFilter keep, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        return StoreTask.Run(() =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);

            // The rows and the counter taken together under the lock the writer changes both under: one snapshot.
            long resourceVersion;
            List<KeyValuePair<(string Namespace, string Name), Row>> rows;
            lock (_rowsLock)
            {
                resourceVersion = _resourceVersion;
                rows = !_rows.TryGetValue(resource, out var all) ? []
                    : ns is null ? [.. all]
                    : [.. all.Where(r => string.Equals(r.Key.Namespace, ns, StringComparison.Ordinal))];
            }

            var items = new List<JsonObject>(rows.Count);
            var corrupt = new List<string>();
            foreach (var (id, row) in rows)
            {
                if (!keep(row.Json))
                {
                    continue;
                }

                if (ObjectJson.TryParseStored(row.Json, out _) is { } obj)
                {
                    items.Add(obj);
                }
                else
                {
                    corrupt.Add(new ObjectKey(resource, id.Namespace, id.Name).ToString());
                }
            }

            if (corrupt.Count > 0)
            {
                throw new InvalidDataException($"Cannot list {resource}: unreadable stored objects {string.Join(", ", corrupt)} in {_path}; replace or delete them.");
            }

            return new StoreList(items, resourceVersion);
        }, cancellationToken);
    }

    public Task<JsonObject> CreateAsync(ObjectKey key, JsonObject obj, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        ArgumentNullException.ThrowIfNull(obj);
        return WriteAsync((transaction, resourceVersion) =>
        {
            if (WriterRowOf(key) is not null)
            {
                throw StoreErrors.AlreadyExists(key);
            }

            return Put(transaction, "INSERT INTO objects (resource, namespace, name, rv, json) VALUES ($resource, $namespace, $name, $rv, $json)", key, obj, resourceVersion, WatchEventType.Added);
        }, cancellationToken);
    }

    public Task<JsonObject> UpdateAsync(ObjectKey key, JsonObject obj, long? expectedResourceVersion = null, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        ArgumentNullException.ThrowIfNull(obj);
        return WriteAsync((transaction, resourceVersion) =>
        {
            StoreErrors.CheckReplace(key, WriterRowOf(key)?.ResourceVersion, expectedResourceVersion, delete: false);
            return Put(transaction, "UPDATE objects SET rv = $rv, json = $json WHERE resource = $resource AND namespace = $namespace AND name = $name", key, obj, resourceVersion, WatchEventType.Modified);
        }, cancellationToken);
    }

    public Task<JsonObject> DeleteAsync(ObjectKey key, long? expectedResourceVersion = null, CancellationToken cancellationToken = default)
    {
        StoreErrors.CheckKey(key);
        return WriteAsync((transaction, resourceVersion) =>
        {
            var row = WriterRowOf(key);
            StoreErrors.CheckReplace(key, row?.ResourceVersion, expectedResourceVersion, delete: true);
            using (var delete = Command(_writer, transaction, "DELETE FROM objects WHERE resource = $resource AND namespace = $namespace AND name = $name", key))
            {
                delete.ExecuteNonQuery();
            }

            // An unreadable object can still be deleted (that is how it gets cleaned up); watchers then see its identity only.
            var removed = ObjectJson.TryParseStored(row!.Json, out _) is { } old && old["metadata"] is null or JsonObject
                ? ObjectJson.Stamp(old, resourceVersion)
                : ObjectJson.Tombstone(key, resourceVersion);
            return (new StoredChange(WatchEventType.Deleted, key, resourceVersion, ObjectJson.ToUtf8(removed)), removed, null);
        }, cancellationToken);
    }

    public IAsyncEnumerable<WatchEvent> WatchAsync(string resource, string? ns, long sinceResourceVersion, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _hub.Watch(resource, ns, sinceResourceVersion, cancellationToken);
    }

    /// <summary>Waits for a write in progress, ends all watches and closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _hub.Close();
            // The only connection: closing it checkpoints the WAL into the file.
            _writer.Dispose();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static SqliteObjectStore Open(string path, StoreLimits limits, TimeProvider time)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        limits.Validate();
        var fullPath = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(fullPath)!);

        var writer = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            // The writer lives as long as the store; pooling it would keep the file open after dispose.
            Pooling = false,
        }.ToString());
        try
        {
            writer.Open();
            var resourceVersion = Prepare(writer, fullPath, time);
            var rows = Load(writer);
            return new SqliteObjectStore(writer, resourceVersion, limits, rows);
        }
        catch (SqliteException e) when ((e.SqliteErrorCode & 0xFF) is SqliteCorrupt or SqliteNotADatabase)
        {
            writer.Dispose();
            throw new InvalidDataException($"{fullPath} is not a usable EdgeKube store: {e.Message}. Move it aside and restore a backup; it was left untouched.", e);
        }
        catch (SqliteException e)
        {
            writer.Dispose();
            throw new IOException($"Cannot open the store {fullPath}: {e.Message}", e);
        }
        catch
        {
            writer.Dispose();
            throw;
        }
    }

    /// <summary>Sets the connection up, checks the file and creates the schema; returns the stored resourceVersion.</summary>
    private static long Prepare(SqliteConnection writer, string path, TimeProvider time)
    {
        // Reading user_version is the first touch of the file: a garbage file fails here with "file is not a database".
        var version = Convert.ToInt32(Scalar(writer, "PRAGMA user_version"), CultureInfo.InvariantCulture);
        if (version > SchemaVersion)
        {
            throw new InvalidDataException($"{path} has store schema {version}, newer than this master understands ({SchemaVersion}).");
        }

        Scalar(writer, "PRAGMA journal_mode = WAL");
        Scalar(writer, "PRAGMA synchronous = FULL");

        // SD cards do tear pages; find out now rather than in the middle of serving the cluster.
        var check = Convert.ToString(Scalar(writer, "PRAGMA quick_check"), CultureInfo.InvariantCulture);
        if (!string.Equals(check, "ok", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path} is corrupt (quick_check: {check}). Move it aside and restore a backup; it was left untouched.");
        }

        using (var transaction = writer.BeginTransaction())
        {
            using (var schema = Command(writer, transaction, """
                CREATE TABLE IF NOT EXISTS objects (
                    resource  TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    name      TEXT NOT NULL,
                    rv        INTEGER NOT NULL,
                    json      TEXT NOT NULL,
                    PRIMARY KEY (resource, namespace, name)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS store_info (
                    id               INTEGER PRIMARY KEY CHECK (id = 1),
                    resource_version INTEGER NOT NULL,
                    created          TEXT NOT NULL
                );
                INSERT OR IGNORE INTO store_info (id, resource_version, created) VALUES (1, 0, $created);
                PRAGMA user_version = 1;
                """))
            {
                schema.Parameters.AddWithValue("$created", time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture));
                schema.ExecuteNonQuery();
            }

            transaction.Commit();
        }

        var counter = Convert.ToInt64(Scalar(writer, "SELECT resource_version FROM store_info"), CultureInfo.InvariantCulture);

        // Both are written in every transaction; taking the larger guards against a hand-edited counter reusing versions.
        var newest = Convert.ToInt64(Scalar(writer, "SELECT coalesce(max(rv), 0) FROM objects"), CultureInfo.InvariantCulture);
        return Math.Max(counter, newest);
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql, ObjectKey? key = null)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        if (key is { } k)
        {
            command.Parameters.AddWithValue("$resource", k.Resource);
            command.Parameters.AddWithValue("$namespace", k.Namespace);
            command.Parameters.AddWithValue("$name", k.Name);
        }

        return command;
    }

    /// <summary>Every row of the file, as it is: an unreadable one fails reads of it, not the open (see the remarks).</summary>
    private static Dictionary<string, SortedDictionary<(string Namespace, string Name), Row>> Load(SqliteConnection connection)
    {
        var rows = new Dictionary<string, SortedDictionary<(string Namespace, string Name), Row>>(StringComparer.Ordinal);
        using var command = Command(connection, null, "SELECT resource, namespace, name, rv, json FROM objects");
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            RowsOf(rows, reader.GetString(0))[(reader.GetString(1), reader.GetString(2))] = new Row(reader.GetInt64(3), Encoding.UTF8.GetBytes(reader.GetString(4)));
        }

        return rows;
    }

    private static SortedDictionary<(string Namespace, string Name), Row> RowsOf(Dictionary<string, SortedDictionary<(string Namespace, string Name), Row>> rows, string resource)
    {
        if (!rows.TryGetValue(resource, out var all))
        {
            // SQLite's BINARY collation orders by bytes; for the ASCII of Kubernetes names that is ordinal order.
            rows[resource] = all = new SortedDictionary<(string Namespace, string Name), Row>(Comparer<(string Namespace, string Name)>.Create((a, b) =>
            {
                var byNamespace = string.CompareOrdinal(a.Namespace, b.Namespace);
                return byNamespace != 0 ? byNamespace : string.CompareOrdinal(a.Name, b.Name);
            }));
        }

        return all;
    }

    private Row? RowOf(ObjectKey key) =>
        _rows.TryGetValue(key.Resource, out var all) && all.TryGetValue((key.Namespace, key.Name), out var row) ? row : null;

    /// <summary>The row a write sees: what earlier writes of its batch left, else the committed one. Writer only.</summary>
    private Row? WriterRowOf(ObjectKey key) =>
        _uncommitted is { } pending && pending.TryGetValue(key, out var row) ? row : RowOf(key);

    private static JsonObject ParseStored(ObjectKey key, Row row) =>
        ObjectJson.TryParseStored(row.Json, out var error) ?? throw new InvalidDataException(
            string.Create(CultureInfo.InvariantCulture, $"Stored object {key} (resourceVersion {row.ResourceVersion}) is unreadable: {error}; replace or delete it."));

    private (StoredChange Change, JsonObject Result, Row? Row) Put(SqliteTransaction transaction, string sql, ObjectKey key, JsonObject obj, long resourceVersion, WatchEventType type)
    {
        var stored = ObjectJson.Stamp(obj, resourceVersion);
        var json = ObjectJson.ToUtf8(stored);
        using var command = Command(_writer, transaction, sql, key);
        command.Parameters.AddWithValue("$rv", resourceVersion);
        command.Parameters.AddWithValue("$json", Encoding.UTF8.GetString(json));
        command.ExecuteNonQuery();
        return (new StoredChange(type, key, resourceVersion, json), stored, new Row(resourceVersion, json));
    }

    /// <summary>
    /// One write, committed with whatever other writes are waiting (group commit): the writer that gets
    /// the write lock takes every queued write, applies them in turn in one transaction (each in its own
    /// savepoint, with its own resourceVersion and the bumped counter), commits once, and only then
    /// publishes the new rows, the resourceVersion and the watch events in order and answers each
    /// caller. Every write is still durable (synchronous=FULL) before it is acknowledged; what is shared is
    /// the fsync, which was the cost of every write (a few ms on an SD card, on this VM too) and capped the
    /// master at a few hundred writes a second however many pods, nodes and controllers were writing.
    /// </summary>
    private async Task<JsonObject> WriteAsync(Func<SqliteTransaction, long, (StoredChange Change, JsonObject Result, Row? Row)> write, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        var pending = new PendingWrite(write);
        lock (_queue)
        {
            _queue.Enqueue(pending);
        }

        // Not cancellable from here: once queued, the write may be committed by another writer's batch.
        await _writeLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (!pending.Done.Task.IsCompleted)
            {
                CommitQueued();
            }
        }
        finally
        {
            _writeLock.Release();
        }

        return await pending.Done.Task.ConfigureAwait(false);
    }

    /// <summary>Commits every queued write in one transaction; under the write lock.</summary>
    private void CommitQueued()
    {
        List<PendingWrite> batch;
        lock (_queue)
        {
            batch = [.. _queue];
            _queue.Clear();
        }

        if (_disposed)
        {
            foreach (var p in batch)
            {
                p.Done.TrySetException(new ObjectDisposedException(nameof(SqliteObjectStore)));
            }

            return;
        }

        var resourceVersion = _resourceVersion;
        var applied = new List<(PendingWrite Write, StoredChange Change, JsonObject Result, Row? Row)>(batch.Count);
        _uncommitted = new Dictionary<ObjectKey, Row?>();
        try
        {
            using (var transaction = _writer.BeginTransaction())
            {
                foreach (var p in batch)
                {
                    Execute(transaction, "SAVEPOINT write");
                    try
                    {
                        var (change, result, row) = p.Write(transaction, resourceVersion + 1);
                        Execute(transaction, "RELEASE write");
                        resourceVersion++;
                        _uncommitted[change.Key] = row;
                        applied.Add((p, change, result, row));
                    }
                    catch (Exception e)
                    {
                        // This write alone fails (a conflict, mostly, found before it changed anything).
                        Execute(transaction, "ROLLBACK TO write");
                        Execute(transaction, "RELEASE write");
                        p.Done.TrySetException(e);
                    }
                }

                if (applied.Count > 0)
                {
                    using (var counter = Command(_writer, transaction, "UPDATE store_info SET resource_version = $rv"))
                    {
                        counter.Parameters.AddWithValue("$rv", resourceVersion);
                        counter.ExecuteNonQuery();
                    }

                    transaction.Commit();
                }
            }
        }
        catch (Exception e)
        {
            // Nothing of the batch was committed: every write in it fails, and the counter stays.
            foreach (var a in applied)
            {
                a.Write.Done.TrySetException(e);
            }

            foreach (var p in batch)
            {
                p.Done.TrySetException(e);
            }

            return;
        }
        finally
        {
            _uncommitted = null;
        }

        lock (_rowsLock)
        {
            foreach (var (_, change, _, row) in applied)
            {
                var rows = RowsOf(_rows, change.Key.Resource);
                if (row is null)
                {
                    rows.Remove((change.Key.Namespace, change.Key.Name));
                }
                else
                {
                    rows[(change.Key.Namespace, change.Key.Name)] = row;
                }
            }

            Volatile.Write(ref _resourceVersion, resourceVersion);
        }

        // Still under the write lock, so watchers see changes in resourceVersion order.
        foreach (var a in applied)
        {
            _hub.Publish(a.Change);
        }

        foreach (var a in applied)
        {
            a.Write.Done.TrySetResult(a.Result);
        }
    }

    private void Execute(SqliteTransaction transaction, string sql)
    {
        using var command = Command(_writer, transaction, sql);
        command.ExecuteNonQuery();
    }

    /// <summary>A queued write and the caller waiting for it.</summary>
    private sealed class PendingWrite(Func<SqliteTransaction, long, (StoredChange Change, JsonObject Result, Row? Row)> write)
    {
        public Func<SqliteTransaction, long, (StoredChange Change, JsonObject Result, Row? Row)> Write { get; } = write;

        public TaskCompletionSource<JsonObject> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>One stored row: its resourceVersion and its JSON as committed (possibly unreadable, when the file had it so).</summary>
    private sealed record Row(long ResourceVersion, byte[] Json);
}
