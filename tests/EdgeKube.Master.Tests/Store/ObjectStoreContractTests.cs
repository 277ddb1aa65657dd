using EdgeKube.Master.Api;
using System.Text.Json.Nodes;
using EdgeKube.Master.Store;

namespace EdgeKube.Master.Tests.Store;

/// <summary>The rules of <see cref="IObjectStore"/>, run against every implementation.</summary>
public abstract class ObjectStoreContractTests : IAsyncLifetime
{
    // A guard against a hung test, not a timing assertion: every awaited event is due at once.
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(30);

    private readonly List<IObjectStore> _stores = [];

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
    }

    internal static ObjectKey Pod(string ns, string name) => new("pods", ns, name);

    internal static JsonObject PodObject(string ns, string name, string image = "nginx") => new()
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Pod",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns },
        ["spec"] = new JsonObject { ["containers"] = new JsonArray(new JsonObject { ["name"] = "c", ["image"] = image }) },
    };

    internal static string? ResourceVersionOf(JsonObject obj) => obj["metadata"]?["resourceVersion"]?.GetValue<string>();

    internal static async Task<WatchEvent> NextAsync(IAsyncEnumerator<WatchEvent> watch)
    {
        Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Hang), "the watch ended");
        return watch.Current;
    }

    internal static Task<JsonObject> CreatePodAsync(IObjectStore store, string ns, string name) =>
        store.CreateAsync(Pod(ns, name), PodObject(ns, name));

    /// <summary>A store for one test; disposed after it.</summary>
    internal async Task<IObjectStore> OpenAsync(StoreLimits? limits = null)
    {
        var store = await OpenStoreAsync(limits ?? StoreLimits.Default);
        _stores.Add(store);
        return store;
    }

    private protected abstract Task<IObjectStore> OpenStoreAsync(StoreLimits limits);

    private protected abstract int WatcherCount(IObjectStore store);

    [Fact]
    public async Task Create_stamps_a_string_resource_version_and_get_returns_a_fresh_copy()
    {
        var store = await OpenAsync();
        var input = PodObject("default", "web");

        var created = await store.CreateAsync(Pod("default", "web"), input);

        Assert.Equal(1, store.CurrentResourceVersion);
        Assert.Equal("1", ResourceVersionOf(created));
        Assert.Null(ResourceVersionOf(input));
        created["spec"] = "mutated by the caller";
        input["spec"] = "mutated by the caller";
        var got = await store.GetAsync(Pod("default", "web"));
        Assert.NotNull(got);
        Assert.Equal("nginx", got["spec"]!["containers"]![0]!["image"]!.GetValue<string>());
        Assert.Equal("1", ResourceVersionOf(got));
        got["spec"] = "mutated again";
        Assert.IsType<JsonObject>((await store.GetAsync(Pod("default", "web")))!["spec"]);
    }

    [Fact]
    public async Task Create_without_metadata_gets_metadata_with_the_resource_version()
    {
        var store = await OpenAsync();

        var created = await store.CreateAsync(new ObjectKey("namespaces", "", "prod"), new JsonObject { ["kind"] = "Namespace" });

        Assert.Equal("1", ResourceVersionOf(created));
    }

    [Fact]
    public async Task Get_of_a_missing_object_is_null()
    {
        var store = await OpenAsync();

        Assert.Null(await store.GetAsync(Pod("default", "nothing")));
    }

    [Fact]
    public async Task A_filtered_list_parses_only_what_passes_and_versions_come_without_bodies()
    {
        var store = await OpenAsync();
        await CreatePodAsync(store, "default", "plain");
        var owned = PodObject("default", "owned");
        owned.Metadata()["ownerReferences"] = new JsonArray(new JsonObject { ["kind"] = "Job", ["name"] = "j", ["uid"] = "u" });
        await store.CreateAsync(Pod("default", "owned"), owned);
        var other = await CreatePodAsync(store, "kube-system", "other");

        var filtered = await store.ListAsync("pods", null, StoredJson.Mentions("ownerReferences"));
        Assert.Equal(["owned"], filtered.Items.Select(o => o.Name()));
        Assert.Equal(store.CurrentResourceVersion, filtered.ResourceVersion);
        Assert.Empty((await store.ListAsync("pods", "kube-system", StoredJson.Mentions("ownerReferences"))).Items);

        var versions = await store.ListVersionsAsync("pods");
        Assert.Equal(
            [(Pod("default", "owned"), 2L), (Pod("default", "plain"), 1L), (Pod("kube-system", "other"), other.ResourceVersion())],
            versions.OrderBy(v => v.Key.ToString(), StringComparer.Ordinal));
        Assert.Empty(await store.ListVersionsAsync("nodes"));
    }

    [Fact]
    public async Task Create_of_a_taken_key_is_already_exists_in_kubernetes_words()
    {
        var store = await OpenAsync();
        await CreatePodAsync(store, "default", "web");

        var e = await Assert.ThrowsAsync<StoreException>(() => CreatePodAsync(store, "default", "web"));

        Assert.Equal(StoreErrorKind.AlreadyExists, e.Kind);
        Assert.Equal("pods \"web\" already exists", e.Message);
        Assert.Equal(1, store.CurrentResourceVersion);
    }

    [Fact]
    public async Task Update_and_delete_of_a_missing_object_are_not_found_naming_the_group_as_kubernetes_does()
    {
        var store = await OpenAsync();
        var key = new ObjectKey("deployments.apps", "default", "x");

        var update = await Assert.ThrowsAsync<StoreException>(() => store.UpdateAsync(key, new JsonObject()));
        var delete = await Assert.ThrowsAsync<StoreException>(() => store.DeleteAsync(key));

        Assert.Equal((StoreErrorKind.NotFound, "deployments.apps \"x\" not found"), (update.Kind, update.Message));
        Assert.Equal((StoreErrorKind.NotFound, "deployments.apps \"x\" not found"), (delete.Kind, delete.Message));
        Assert.Equal(0, store.CurrentResourceVersion);
    }

    [Fact]
    public async Task Update_replaces_the_object_with_a_new_resource_version_and_checks_the_expected_one()
    {
        var store = await OpenAsync();
        var key = Pod("default", "web");
        await CreatePodAsync(store, "default", "web");
        await CreatePodAsync(store, "default", "other");

        var updated = await store.UpdateAsync(key, PodObject("default", "web", "nginx:2"), expectedResourceVersion: 1);
        var stale = await Assert.ThrowsAsync<StoreException>(() => store.UpdateAsync(key, PodObject("default", "web", "nginx:3"), expectedResourceVersion: 1));
        var unconditional = await store.UpdateAsync(key, PodObject("default", "web", "nginx:4"));

        Assert.Equal("3", ResourceVersionOf(updated));
        Assert.Equal(StoreErrorKind.Conflict, stale.Kind);
        Assert.Equal("Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again", stale.Message);
        Assert.Equal("4", ResourceVersionOf(unconditional));
        var got = await store.GetAsync(key);
        Assert.Equal("nginx:4", got!["spec"]!["containers"]![0]!["image"]!.GetValue<string>());
        Assert.Equal(4, store.CurrentResourceVersion);
    }

    [Fact]
    public async Task Delete_returns_the_object_with_the_deletion_resource_version_and_checks_the_expected_one()
    {
        var store = await OpenAsync();
        var key = Pod("default", "web");
        await CreatePodAsync(store, "default", "web");

        var stale = await Assert.ThrowsAsync<StoreException>(() => store.DeleteAsync(key, expectedResourceVersion: 7));
        var deleted = await store.DeleteAsync(key, expectedResourceVersion: 1);

        Assert.Equal(StoreErrorKind.Conflict, stale.Kind);
        Assert.Equal("Operation cannot be fulfilled on pods \"web\": Precondition failed: ResourceVersion in precondition: 7, ResourceVersion in object meta: 1", stale.Message);
        Assert.Equal("2", ResourceVersionOf(deleted));
        Assert.Equal("web", deleted["metadata"]!["name"]!.GetValue<string>());
        Assert.Null(await store.GetAsync(key));
        Assert.Equal(2, store.CurrentResourceVersion);
        var again = await Assert.ThrowsAsync<StoreException>(() => store.DeleteAsync(key));
        Assert.Equal(StoreErrorKind.NotFound, again.Kind);
    }

    [Fact]
    public async Task List_is_ordered_by_namespace_then_name_filters_by_namespace_and_carries_the_resource_version()
    {
        var store = await OpenAsync();
        foreach (var (ns, name) in new[] { ("kube-system", "b"), ("default", "z"), ("default", "a"), ("kube-system", "a"), ("apps", "m") })
        {
            await CreatePodAsync(store, ns, name);
        }

        await store.CreateAsync(new ObjectKey("services", "default", "svc"), new JsonObject());
        await store.CreateAsync(new ObjectKey("pods", "", "cluster-scoped-odd-one"), new JsonObject());

        var all = await store.ListAsync("pods", null);
        var inDefault = await store.ListAsync("pods", "default");
        var clusterScoped = await store.ListAsync("pods", "");
        var none = await store.ListAsync("configmaps", null);

        Assert.Equal(
            ["/cluster-scoped-odd-one", "apps/m", "default/a", "default/z", "kube-system/a", "kube-system/b"],
            all.Items.Select(o => $"{o["metadata"]?["namespace"]?.GetValue<string>()}/{o["metadata"]?["name"]?.GetValue<string>() ?? "cluster-scoped-odd-one"}"));
        Assert.Equal(7, all.ResourceVersion);
        Assert.Equal(["a", "z"], inDefault.Items.Select(o => o["metadata"]!["name"]!.GetValue<string>()));
        Assert.Single(clusterScoped.Items);
        Assert.Empty(none.Items);
        Assert.Equal(7, none.ResourceVersion);
    }

    [Fact]
    public async Task Watch_from_a_resource_version_replays_what_came_after_it_then_follows()
    {
        var store = await OpenAsync();
        var a = await CreatePodAsync(store, "default", "a");
        await CreatePodAsync(store, "default", "b");
        await store.UpdateAsync(Pod("default", "a"), PodObject("default", "a", "nginx:2"));

        await using var watch = store.WatchAsync("pods", null, long.Parse(ResourceVersionOf(a)!)).GetAsyncEnumerator();
        var replayed = new[] { await NextAsync(watch), await NextAsync(watch) };
        var pending = NextAsync(watch);
        await CreatePodAsync(store, "default", "c");
        var live = await pending;
        await store.DeleteAsync(Pod("default", "b"));
        var deleted = await NextAsync(watch);

        Assert.Equal([(WatchEventType.Added, "b", 2L), (WatchEventType.Modified, "a", 3L)], replayed.Select(e => (e.Type, e.Key.Name, e.ResourceVersion)));
        Assert.Equal("3", ResourceVersionOf(replayed[1].Object));
        Assert.Equal((WatchEventType.Added, Pod("default", "c"), 4L, "4"), (live.Type, live.Key, live.ResourceVersion, ResourceVersionOf(live.Object)));
        Assert.Equal((WatchEventType.Deleted, "b", 5L, "5"), (deleted.Type, deleted.Key.Name, deleted.ResourceVersion, ResourceVersionOf(deleted.Object)));
    }

    [Fact]
    public async Task Watch_sees_only_its_resource_and_namespace()
    {
        var store = await OpenAsync();
        var since = store.CurrentResourceVersion;
        await using var watch = store.WatchAsync("pods", "prod", since).GetAsyncEnumerator();
        await using var everywhere = store.WatchAsync("pods", null, since).GetAsyncEnumerator();

        await CreatePodAsync(store, "default", "a");
        await store.CreateAsync(new ObjectKey("configmaps", "prod", "cfg"), new JsonObject());
        await CreatePodAsync(store, "prod", "b");

        var seen = await NextAsync(watch);
        Assert.Equal((Pod("prod", "b"), 3L), (seen.Key, seen.ResourceVersion));
        Assert.Equal(["default/a", "prod/b"], new[] { await NextAsync(everywhere), await NextAsync(everywhere) }.Select(e => $"{e.Key.Namespace}/{e.Key.Name}"));
    }

    [Fact]
    public async Task Watch_from_zero_starts_at_the_call()
    {
        var store = await OpenAsync();
        await CreatePodAsync(store, "default", "before");

        await using var watch = store.WatchAsync("pods", null, 0).GetAsyncEnumerator();
        await CreatePodAsync(store, "default", "after");

        Assert.Equal("after", (await NextAsync(watch)).Key.Name);
    }

    [Fact]
    public async Task Each_watcher_gets_its_own_copy_of_an_event()
    {
        var store = await OpenAsync();
        await using var first = store.WatchAsync("pods", null, store.CurrentResourceVersion).GetAsyncEnumerator();
        await using var second = store.WatchAsync("pods", null, store.CurrentResourceVersion).GetAsyncEnumerator();
        await CreatePodAsync(store, "default", "a");

        (await NextAsync(first)).Object["spec"] = "mutated";

        Assert.IsType<JsonObject>((await NextAsync(second)).Object["spec"]);
    }

    [Fact]
    public async Task Watch_from_before_the_kept_history_is_expired()
    {
        var store = await OpenAsync(new StoreLimits { HistoryCapacity = 5 });
        for (var i = 0; i < 10; i++)
        {
            await CreatePodAsync(store, "default", $"p{i}");
        }

        // History holds 6..10: a watch from 5 misses nothing, one from 4 would miss 5.
        var e = await Assert.ThrowsAsync<StoreException>(async () =>
        {
            await foreach (var _ in store.WatchAsync("pods", null, 4))
            {
            }
        });
        await using var fromOldest = store.WatchAsync("pods", null, 5).GetAsyncEnumerator();

        Assert.Equal(StoreErrorKind.Expired, e.Kind);
        Assert.Equal("too old resource version: 4 (5)", e.Message);
        Assert.Equal(6, (await NextAsync(fromOldest)).ResourceVersion);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_slow_watcher_is_expired_while_writers_go_on()
    {
        var store = await OpenAsync(new StoreLimits { WatcherBufferCapacity = 4 });
        var slow = store.WatchAsync("pods", null, store.CurrentResourceVersion);

        for (var i = 0; i < 50; i++)
        {
            await CreatePodAsync(store, "default", $"p{i}");
        }

        await using var reader = slow.GetAsyncEnumerator();
        var e = await Assert.ThrowsAsync<StoreException>(async () => await reader.MoveNextAsync());
        Assert.Equal(StoreErrorKind.Expired, e.Kind);
        Assert.Equal(50, store.CurrentResourceVersion);
        Assert.Equal(0, WatcherCount(store));
    }

    [Fact]
    public async Task Cancelling_a_watch_ends_it_without_an_error_and_unregisters_it()
    {
        var store = await OpenAsync();
        using var cancel = new CancellationTokenSource();
        var seen = new List<string>();
        var watch = store.WatchAsync("pods", null, store.CurrentResourceVersion, cancel.Token);
        var watching = Task.Run(async () =>
        {
            await foreach (var e in watch)
            {
                seen.Add(e.Key.Name);
                await cancel.CancelAsync();
            }
        });

        await CreatePodAsync(store, "default", "a");
        await watching.WaitAsync(Hang);

        Assert.Equal(["a"], seen);
        Assert.Equal(0, WatcherCount(store));
        await CreatePodAsync(store, "default", "b");
    }

    [Fact]
    public async Task Disposing_the_store_ends_its_watches()
    {
        var store = await OpenAsync();
        await using var watch = store.WatchAsync("pods", null, 0).GetAsyncEnumerator();
        var pending = watch.MoveNextAsync().AsTask();

        await store.DisposeAsync();

        Assert.False(await pending.WaitAsync(Hang));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => CreatePodAsync(store, "default", "late"));
    }

    [Fact(Timeout = 120_000)]
    public async Task Concurrent_writers_get_unique_increasing_resource_versions_seen_in_order_by_a_watcher()
    {
        const int writers = 8, perWriter = 200;
        var store = await OpenAsync(new StoreLimits { WatcherBufferCapacity = writers * perWriter });
        var watch = store.WatchAsync("pods", null, store.CurrentResourceVersion);

        var results = await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var versions = new List<long>();
            for (var i = 0; i < perWriter; i++)
            {
                versions.Add(long.Parse(ResourceVersionOf(await CreatePodAsync(store, $"ns{w}", $"p{i}"))!));
            }

            return versions;
        })));

        var all = results.SelectMany(v => v).ToList();
        Assert.Equal(writers * perWriter, all.Distinct().Count());
        Assert.All(results, versions => Assert.Equal(versions.Order(), versions));
        Assert.Equal(Enumerable.Range(1, writers * perWriter).Select(i => (long)i), all.Order());
        Assert.Equal(writers * perWriter, store.CurrentResourceVersion);

        var seen = new List<long>();
        await foreach (var e in watch)
        {
            seen.Add(e.ResourceVersion);
            if (seen.Count == writers * perWriter)
            {
                break;
            }
        }

        Assert.Equal(all.Order(), seen);
        Assert.Equal(writers * perWriter, (await store.ListAsync("pods", null)).Items.Count);
    }

    [Fact]
    public async Task Bad_arguments_are_rejected()
    {
        var store = await OpenAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => store.CreateAsync(new ObjectKey("pods", "default", ""), new JsonObject()));
        await Assert.ThrowsAsync<ArgumentNullException>(() => store.CreateAsync(Pod("default", "a"), null!));
        await Assert.ThrowsAsync<ArgumentException>(() => store.CreateAsync(Pod("default", "a"), new JsonObject { ["metadata"] = "not an object" }));
        Assert.Equal(0, store.CurrentResourceVersion);
    }
}
