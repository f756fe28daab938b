import station
import station.executors


def test_station_all_is_sorted_and_exported() -> None:
    assert station.__all__ == sorted(station.__all__)
    assert all(hasattr(station, name) for name in station.__all__)


def test_station_exported_members() -> None:
    assert set(station.__all__) == {
        "CollectionRecord",
        "DicomHeader",
        "DicomIndex",
        "HubError",
        "IndexReport",
        "SkippedFile",
        "StationAgent",
        "StationIdentity",
        "StationSettings",
        "StationState",
        "build_publication",
        "collection_to_turtle",
        "enrol",
        "index_collection",
        "iter_dicom_paths",
        "publish_collections",
        "read_header",
        "run_agent",
        "summarise_collection",
        "write_synthetic_collection",
    }


def test_station_executors_exported_members() -> None:
    assert station.executors.__all__ == [
        "Executor",
        "ExecutorError",
        "RunResult",
        "RunSpec",
        "SandboxExecutor",
        "executor_for",
        "is_docker_ready",
    ]
