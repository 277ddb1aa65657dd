using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeKube.Master.Api;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Store;
using EdgeKube.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Master.Tests.Controllers;

/// <summary>
/// <c>edgekube.io/identify</c> on fake time: the end stamp, the payload the bridge publishes, the end at its
/// time, restart on a new value, stop on removal, bad values, and a master restarted mid-identify.
/// </summary>
public sealed class IdentifyControllerTests
{
    private readonly InMemoryObjectStore _store = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private IdentifyController NewController() => new(_store, new EventRecorder(_store, _time), _time, NullLogger<IdentifyController>.Instance);

    private static readonly ObjectKey Key = new("nodes", string.Empty, "pi");

    private Task AddNodeAsync() => _store.CreateAsync(Key, new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Node",
        ["metadata"] = new JsonObject { ["name"] = "pi", ["uid"] = "uid-pi", ["annotations"] = new JsonObject { ["keep"] = "me" } },
        ["spec"] = new JsonObject(),
    });

    /// <summary>What <c>kubectl annotate</c> does: sets or (null) removes the annotation.</summary>
    private async Task AnnotateAsync(string? value)
    {
        var node = (await _store.GetAsync(Key))!;
        var annotations = node.Metadata().Obj("annotations");
        if (value is null)
        {
            annotations.Remove(NodeKeys.Identify);
        }
        else
        {
            annotations[NodeKeys.Identify] = value;
        }

        await _store.UpdateAsync(Key, node, node.ResourceVersion());
    }

    private async Task<JsonObject> NodeAsync() => (await _store.GetAsync(Key))!;

    private async Task<string?> AnnotationAsync(string key) => (await NodeAsync()).Metadata()["annotations"]?[key]?.GetValue<string>();

    private async Task ReconcileAsync(IdentifyController controller) => await controller.ReconcileAsync(await NodeAsync(), CancellationToken.None);

    private async Task<IdentifyRequest?> PayloadAsync()
    {
        var bytes = IdentifyController.Payload(await NodeAsync());
        return bytes.Length == 0 ? null : JsonSerializer.Deserialize(bytes, ProtocolJson.Default.IdentifyRequest);
    }

    private async Task<List<(string Type, string Reason, string Message, int Count)>> EventsAsync() =>
        [.. (await _store.ListAsync("events", "default")).Items.Select(e => (e.Str("type")!, e.Str("reason")!, e.Str("message")!, e["count"]!.GetValue<int>()))];

    [Fact]
    public async Task An_identify_is_stamped_published_and_ended_at_its_time_and_works_again()
    {
        await AddNodeAsync();
        var controller = NewController();
        await ReconcileAsync(controller);
        Assert.Null(await PayloadAsync());

        await AnnotateAsync("30s");
        await ReconcileAsync(controller);
        Assert.Equal("2026-01-01T00:00:30.000000Z", await AnnotationAsync(NodeKeys.IdentifyUntil));
        Assert.Equal(new IdentifyRequest("30s", 30, _time.GetUtcNow().AddSeconds(30)), await PayloadAsync());
        Assert.Contains(("Normal", "Identify", "Flashing the node's LEDs for 30s (until 2026-01-01T00:00:30.000000Z)", 1), await EventsAsync());

        // Its own stamp coming back as a watch event changes nothing.
        await ReconcileAsync(controller);
        Assert.Equal("2026-01-01T00:00:30.000000Z", await AnnotationAsync(NodeKeys.IdentifyUntil));

        _time.Advance(TimeSpan.FromSeconds(29));
        await controller.EndDueAsync(CancellationToken.None);
        Assert.Equal("30s", await AnnotationAsync(NodeKeys.Identify));
        _time.Advance(TimeSpan.FromSeconds(1));
        await controller.EndDueAsync(CancellationToken.None);
        Assert.Null(await AnnotationAsync(NodeKeys.Identify));
        Assert.Null(await AnnotationAsync(NodeKeys.IdentifyUntil));
        Assert.Equal("me", await AnnotationAsync("keep"));
        Assert.Null(await PayloadAsync());
        Assert.Empty(controller.Active);

        // Gone after its end, so the same command works again.
        await AnnotateAsync("30s");
        await ReconcileAsync(controller);
        Assert.Equal("2026-01-01T00:01:00.000000Z", await AnnotationAsync(NodeKeys.IdentifyUntil));
    }

    [Fact]
    public async Task A_new_value_restarts_it_and_removing_the_annotation_stops_it()
    {
        await AddNodeAsync();
        var controller = NewController();
        await AnnotateAsync("2m");
        await ReconcileAsync(controller);
        _time.Advance(TimeSpan.FromSeconds(100));

        // kubectl annotate --overwrite with a new value: from now, for the new time.
        await AnnotateAsync("45s");
        await ReconcileAsync(controller);
        Assert.Equal(new IdentifyRequest("45s", 45, _time.GetUtcNow().AddSeconds(45)), await PayloadAsync());
        _time.Advance(TimeSpan.FromSeconds(30));
        await controller.EndDueAsync(CancellationToken.None);
        Assert.NotNull(await PayloadAsync()); // the 2m one would have ended by now

        // Cleared end stamp (edgekube-master node identify): a fresh start with the same value.
        var node = await NodeAsync();
        node.Metadata().Obj("annotations").Remove(NodeKeys.IdentifyUntil);
        await _store.UpdateAsync(Key, node, node.ResourceVersion());
        await ReconcileAsync(controller);
        Assert.Equal(_time.GetUtcNow().AddSeconds(45), (await PayloadAsync())!.Until);

        await AnnotateAsync(null);
        await ReconcileAsync(controller);
        Assert.Null(await AnnotationAsync(NodeKeys.IdentifyUntil));
        Assert.Null(await PayloadAsync());
        Assert.Empty(controller.Active);
    }

    [Theory]
    [InlineData("banana")]
    [InlineData("30")]
    [InlineData("0s")]
    [InlineData("-5s")]
    [InlineData("25h")]
    public async Task A_bad_value_gets_one_warning_event_and_stops_a_running_identify(string value)
    {
        await AddNodeAsync();
        var controller = NewController();
        await AnnotateAsync("1m");
        await ReconcileAsync(controller);

        await AnnotateAsync(value);
        await ReconcileAsync(controller);
        await ReconcileAsync(controller);
        Assert.Null(await PayloadAsync());
        Assert.Null(await AnnotationAsync(NodeKeys.IdentifyUntil));
        Assert.Equal(value, await AnnotationAsync(NodeKeys.Identify)); // the person's annotation is left for them to see
        var warning = Assert.Single(await EventsAsync(), e => e.Type == "Warning");
        Assert.Equal(("InvalidIdentify", $"edgekube.io/identify: \"{value}\" is not a duration between 1ms and 24h such as 30s or 2m; the LEDs are not flashed", 1),
            (warning.Reason, warning.Message, warning.Count));

        // Fixed: flashes.
        await AnnotateAsync("10s");
        await ReconcileAsync(controller);
        Assert.NotNull(await PayloadAsync());
    }

    [Fact]
    public async Task A_restarted_master_carries_on_to_the_end_or_finishes_an_identify_that_ended_while_it_was_down()
    {
        await AddNodeAsync();
        await AnnotateAsync("1m");
        await ReconcileAsync(NewController());
        var until = await AnnotationAsync(NodeKeys.IdentifyUntil);

        _time.Advance(TimeSpan.FromSeconds(20));
        var restarted = NewController();
        await ReconcileAsync(restarted);
        Assert.Equal(until, await AnnotationAsync(NodeKeys.IdentifyUntil)); // not restamped
        Assert.Equal(ObjectMeta.ParseTime(until), restarted.Active["pi"]);
        _time.Advance(TimeSpan.FromSeconds(40));
        await restarted.EndDueAsync(CancellationToken.None);
        Assert.Null(await AnnotationAsync(NodeKeys.Identify));

        await AnnotateAsync("10s");
        await ReconcileAsync(restarted);
        _time.Advance(TimeSpan.FromMinutes(5));
        var late = NewController();
        await ReconcileAsync(late);
        Assert.Null(await AnnotationAsync(NodeKeys.Identify));
        Assert.Null(await AnnotationAsync(NodeKeys.IdentifyUntil));
    }

    [Fact]
    public async Task The_loop_ends_an_identify_at_its_time_without_any_node_event()
    {
        await AddNodeAsync();
        var controller = NewController();
        using var stop = new CancellationTokenSource();
        var run = controller.RunAsync(stop.Token);
        await AnnotateAsync("2s");
        await Until(async () => await AnnotationAsync(NodeKeys.IdentifyUntil) is not null, "the stamp");
        for (var i = 0; i < 10 && await AnnotationAsync(NodeKeys.Identify) is not null; i++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(500));
            await Task.Delay(50);
        }

        Assert.Null(await AnnotationAsync(NodeKeys.Identify));
        await stop.CancelAsync();
        await run;
    }

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        for (var i = 0; i < 200; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(25);
        }

        Assert.Fail("never: " + what);
    }
}
