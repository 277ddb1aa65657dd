using System.Text.Json.Nodes;
using EdgeKube.Master.Controllers;
using EdgeKube.Master.Store;
using Microsoft.Extensions.Time.Testing;

namespace EdgeKube.Master.Tests.Controllers;

/// <summary>The recorder's own logic (repeats found in memory), over the in-memory store.</summary>
public sealed class EventRecorderTests
{
    private readonly InMemoryObjectStore _store = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task A_repeat_bumps_the_count_of_the_event_a_different_message_or_object_gets_its_own()
    {
        var recorder = new EventRecorder(_store, _time);
        var pod = Pod("web", "uid-1");

        await recorder.RecordAsync(pod, "Warning", "FailedScheduling", "0/1 nodes are available", "default-scheduler", CancellationToken.None);
        _time.Advance(TimeSpan.FromSeconds(5));
        await recorder.RecordAsync(pod, "Warning", "FailedScheduling", "0/1 nodes are available", "default-scheduler", CancellationToken.None);
        await recorder.RecordAsync(pod, "Warning", "FailedScheduling", "0/2 nodes are available", "default-scheduler", CancellationToken.None);
        await recorder.RecordAsync(Pod("db", "uid-2"), "Warning", "FailedScheduling", "0/1 nodes are available", "default-scheduler", CancellationToken.None);

        var events = (await _store.ListAsync("events", "default")).Items;
        Assert.Equal(3, events.Count);
        var repeated = Assert.Single(events, e => e["involvedObject"]!["uid"]!.GetValue<string>() == "uid-1" && e["message"]!.GetValue<string>() == "0/1 nodes are available");
        Assert.Equal(2, repeated["count"]!.GetValue<int>());
        Assert.Equal("2026-01-01T00:00:00Z", repeated["firstTimestamp"]!.GetValue<string>());
        Assert.Equal("2026-01-01T00:00:05Z", repeated["lastTimestamp"]!.GetValue<string>());
        Assert.All(events.Where(e => e != repeated), e => Assert.Equal(1, e["count"]!.GetValue<int>()));
    }

    [Fact]
    public async Task A_repeat_of_an_event_deleted_meanwhile_starts_a_new_one()
    {
        var recorder = new EventRecorder(_store, _time);
        var pod = Pod("web", "uid-1");
        await recorder.RecordAsync(pod, "Normal", "Scheduled", "assigned", "default-scheduler", CancellationToken.None);
        var first = Assert.Single((await _store.ListAsync("events", "default")).Items);
        await _store.DeleteAsync(new ObjectKey("events", "default", first["metadata"]!["name"]!.GetValue<string>()));

        await recorder.RecordAsync(pod, "Normal", "Scheduled", "assigned", "default-scheduler", CancellationToken.None);

        var again = Assert.Single((await _store.ListAsync("events", "default")).Items);
        Assert.Equal(1, again["count"]!.GetValue<int>());
    }

    [Fact]
    public async Task Only_the_last_remembered_events_are_bumped_older_repeats_start_anew_as_in_client_go()
    {
        var recorder = new EventRecorder(_store, _time);
        var first = Pod("p-first", "uid-first");
        await recorder.RecordAsync(first, "Normal", "Pulled", "image present", "kubelet", CancellationToken.None);
        for (var i = 0; i < EventRecorder.Remembered; i++)
        {
            await recorder.RecordAsync(Pod($"p{i}", $"uid-{i}"), "Normal", "Pulled", "image present", "kubelet", CancellationToken.None);
        }

        await recorder.RecordAsync(first, "Normal", "Pulled", "image present", "kubelet", CancellationToken.None);

        var ofFirst = (await _store.ListAsync("events", "default")).Items.Where(e => e["involvedObject"]!["uid"]!.GetValue<string>() == "uid-first").ToList();
        Assert.Equal(2, ofFirst.Count);
        Assert.All(ofFirst, e => Assert.Equal(1, e["count"]!.GetValue<int>()));
    }

    private static JsonObject Pod(string name, string uid) => new()
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Pod",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "default", ["uid"] = uid, ["resourceVersion"] = "1" },
    };
}
