"""The Python SDK for reelgate's video API; its public names are exported by ``reelgate``.

    with reelgate.Client() as client:  # $REELGATE_API_URL, $REELGATE_API_TOKEN
        task = client.create_and_wait("sandbox-t2v", "a paper boat on a rainy street")
        client.download(task.task_id, "boat.mp4")

``Client`` (blocking) and ``AsyncClient`` (asyncio) share every operation (``_flows``) and the
wire format (``_wire``); ``errors`` holds the exception tree and ``models`` the results.
"""
