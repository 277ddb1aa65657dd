using EdgeKube.Master.Store;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Master.Tests.Store;

public sealed class SqliteObjectStoreTests : ObjectStoreContractTests
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgekube-store-").FullName;
    private int _opened;

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private protected override async Task<IObjectStore> OpenStoreAsync(StoreLimits limits) =>
        await SqliteObjectStore.OpenAsync(Path.Combine(_dir, $"store-{++_opened}.db"), limits);

    private protected override int WatcherCount(IObjectStore store) => ((SqliteObjectStore)store).WatcherCount;

    [Fact]
    public async Task Reopening_the_file_keeps_the_objects_and_the_resource_version_counter()
    {
        var path = Path.Combine(_dir, "nested", "master.db");
        await using (var store = await SqliteObjectStore.OpenAsync(path))
        {
            await CreatePodAsync(store, "default", "a");
            await CreatePodAsync(store, "default", "b");
            await store.DeleteAsync(Pod("default", "b"));
        }

        await using var reopened = await SqliteObjectStore.OpenAsync(path);
        Assert.Equal(3, reopened.CurrentResourceVersion);
        Assert.Equal("1", ResourceVersionOf((await reopened.GetAsync(Pod("default", "a")))!));
        Assert.Equal(3, (await reopened.ListAsync("pods", null)).ResourceVersion);

        // History does not survive: from before the restart is Expired, from the current version works.
        var expired = await Assert.ThrowsAsync<StoreException>(async () =>
        {
            await foreach (var _ in reopened.WatchAsync("pods", null, 2))
            {
            }
        });
        Assert.Equal(StoreErrorKind.Expired, expired.Kind);
        await using var watch = reopened.WatchAsync("pods", null, 3).GetAsyncEnumerator();
        var created = await CreatePodAsync(reopened, "default", "c");
        Assert.Equal("4", ResourceVersionOf(created));
        Assert.Equal(4, (await NextAsync(watch)).ResourceVersion);
    }

    [Fact]
    public async Task The_file_is_in_wal_mode_and_records_when_it_was_created()
    {
        var path = Path.Combine(_dir, "master.db");
        var time = new FakeTimeProvider(new DateTimeOffset(2025, 3, 1, 12, 0, 0, TimeSpan.Zero));
        await (await SqliteObjectStore.OpenAsync(path, time)).DisposeAsync();

        await using var connection = OpenRaw(path);
        Assert.Equal("wal", Scalar(connection, "PRAGMA journal_mode"));
        Assert.Equal("2025-03-01T12:00:00.0000000+00:00", Scalar(connection, "SELECT created FROM store_info"));
        Assert.Equal(1L, Scalar(connection, "PRAGMA user_version"));
    }

    [Fact]
    public async Task A_file_that_is_not_a_database_is_refused_with_its_path_and_left_alone()
    {
        var path = Path.Combine(_dir, "garbage.db");
        var garbage = new byte[8192];
        new Random(7).NextBytes(garbage);
        await File.WriteAllBytesAsync(path, garbage);

        var e = await Assert.ThrowsAsync<InvalidDataException>(() => SqliteObjectStore.OpenAsync(path));

        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("not a usable EdgeKube store", e.Message, StringComparison.Ordinal);
        Assert.Equal(garbage, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task A_store_from_a_newer_schema_is_refused()
    {
        var path = Path.Combine(_dir, "future.db");
        await using (var connection = OpenRaw(path))
        {
            Scalar(connection, "PRAGMA user_version = 2");
        }

        var e = await Assert.ThrowsAsync<InvalidDataException>(() => SqliteObjectStore.OpenAsync(path));

        Assert.Contains("schema 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreadable_row_fails_reads_of_it_by_name_while_the_rest_works_and_it_can_be_deleted()
    {
        var path = Path.Combine(_dir, "master.db");
        await using (var store = await SqliteObjectStore.OpenAsync(path))
        {
            await CreatePodAsync(store, "default", "good");
            await CreatePodAsync(store, "default", "torn");
        }

        await using (var connection = OpenRaw(path))
        {
            Scalar(connection, "UPDATE objects SET json = '{\"apiVersion\":\"v1\",\"meta' WHERE name = 'torn'");
        }

        await using var reopened = await SqliteObjectStore.OpenAsync(path);
        Assert.NotNull(await reopened.GetAsync(Pod("default", "good")));
        var get = await Assert.ThrowsAsync<InvalidDataException>(() => reopened.GetAsync(Pod("default", "torn")));
        var list = await Assert.ThrowsAsync<InvalidDataException>(() => reopened.ListAsync("pods", "default"));
        Assert.Contains("pods/default/torn (resourceVersion 2)", get.Message, StringComparison.Ordinal);
        Assert.Contains("pods/default/torn", list.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("good", list.Message, StringComparison.Ordinal);

        await using var watch = reopened.WatchAsync("pods", null, reopened.CurrentResourceVersion).GetAsyncEnumerator();
        var deleted = await reopened.DeleteAsync(Pod("default", "torn"), expectedResourceVersion: 2);
        var seen = await NextAsync(watch);

        Assert.Equal("torn", deleted["metadata"]!["name"]!.GetValue<string>());
        Assert.Equal("3", ResourceVersionOf(deleted));
        Assert.Equal((WatchEventType.Deleted, "3"), (seen.Type, ResourceVersionOf(seen.Object)));
        Assert.Equal(["good"], (await reopened.ListAsync("pods", null)).Items.Select(o => o["metadata"]!["name"]!.GetValue<string>()));
    }

    [Fact]
    public async Task An_unreadable_row_can_be_repaired_by_an_update()
    {
        var path = Path.Combine(_dir, "master.db");
        await using (var store = await SqliteObjectStore.OpenAsync(path))
        {
            await CreatePodAsync(store, "default", "torn");
        }

        await using (var connection = OpenRaw(path))
        {
            Scalar(connection, "UPDATE objects SET json = '[1,2]' WHERE name = 'torn'");
        }

        await using var reopened = await SqliteObjectStore.OpenAsync(path);
        await reopened.UpdateAsync(Pod("default", "torn"), PodObject("default", "torn"), expectedResourceVersion: 1);

        Assert.Equal("2", ResourceVersionOf((await reopened.GetAsync(Pod("default", "torn")))!));
    }

    [Fact]
    public async Task A_counter_behind_the_stored_objects_never_hands_out_a_version_twice()
    {
        var path = Path.Combine(_dir, "master.db");
        await using (var store = await SqliteObjectStore.OpenAsync(path))
        {
            await CreatePodAsync(store, "default", "a");
            await CreatePodAsync(store, "default", "b");
        }

        await using (var connection = OpenRaw(path))
        {
            Scalar(connection, "UPDATE store_info SET resource_version = 0");
        }

        await using var reopened = await SqliteObjectStore.OpenAsync(path);
        Assert.Equal(2, reopened.CurrentResourceVersion);
        Assert.Equal("3", ResourceVersionOf(await CreatePodAsync(reopened, "default", "c")));
    }

    [Fact]
    public async Task Readers_are_not_held_up_by_an_open_list_and_see_committed_writes()
    {
        var store = await OpenAsync();
        await CreatePodAsync(store, "default", "a");

        // A reader connection holding a read transaction (as List does) must not block the writer: WAL.
        var path = Path.Combine(_dir, "store-1.db");
        await using var connection = OpenRaw(path);
        await using var transaction = connection.BeginTransaction(deferred: true);
        Assert.Equal(1L, Scalar(connection, "SELECT count(*) FROM objects", transaction));

        await CreatePodAsync(store, "default", "b");

        Assert.Equal(1L, Scalar(connection, "SELECT count(*) FROM objects", transaction));
        Assert.Equal(2, (await store.ListAsync("pods", null)).Items.Count);
    }

    [Fact]
    public async Task Writes_from_many_threads_each_get_their_own_version_in_order_and_a_failing_one_fails_alone()
    {
        // Writers on many threads at once queue up behind the commit in progress and are committed together
        // (group commit); each must still get its own resourceVersion, watchers must see them in order, and
        // a write that fails (conflict, already exists) must not take the others of its batch with it.
        var path = Path.Combine(_dir, "master.db");
        await using (var store = await SqliteObjectStore.OpenAsync(path))
        {
            await CreatePodAsync(store, "default", "existing");
            await using var watch = store.WatchAsync("pods", null, store.CurrentResourceVersion).GetAsyncEnumerator();
            var writes = Enumerable.Range(0, 50).Select(i => Task.Run(() => CreatePodAsync(store, "default", $"p{i:D2}"))).ToList();
            var conflicting = Task.Run(() => store.UpdateAsync(Pod("default", "existing"), PodObject("default", "existing"), expectedResourceVersion: 99));
            var duplicate = Task.Run(() => CreatePodAsync(store, "default", "existing"));

            var created = await Task.WhenAll(writes);
            Assert.Equal(StoreErrorKind.Conflict, (await Assert.ThrowsAsync<StoreException>(() => conflicting)).Kind);
            Assert.Equal(StoreErrorKind.AlreadyExists, (await Assert.ThrowsAsync<StoreException>(() => duplicate)).Kind);
            var versions = created.Select(o => long.Parse(ResourceVersionOf(o)!, System.Globalization.CultureInfo.InvariantCulture)).Order().ToList();
            Assert.Equal(Enumerable.Range(2, 50).Select(v => (long)v), versions);
            Assert.Equal(51, store.CurrentResourceVersion);
            var seen = new List<long>();
            for (var i = 0; i < 50; i++)
            {
                seen.Add((await NextAsync(watch)).ResourceVersion);
            }

            Assert.Equal(versions, seen);
        }

        await using var reopened = await SqliteObjectStore.OpenAsync(path);
        Assert.Equal(51, reopened.CurrentResourceVersion);
        Assert.Equal(51, (await reopened.ListAsync("pods", null)).Items.Count);
    }

    private static SqliteConnection OpenRaw(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private static object? Scalar(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
