"""Archive/restore and optimistic concurrency (ETag / If-Match) for contacts and companies."""

import asyncio
from typing import Any

import pytest

from tests.api.factories import create_company, create_contact, list_ids, unique_email
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

RESOURCES = ["contacts", "companies"]


async def create(resource: str, actor: Actor, **fields: Any) -> dict[str, Any]:
    if resource == "contacts":
        fields.setdefault("first_name", "Ada")
        return await create_contact(actor, **fields)
    return await create_company(actor, **fields)


def change(resource: str, value: str) -> dict[str, str]:
    """A PATCH body that changes one harmless field."""
    return {"title": value} if resource == "contacts" else {"industry": value}


class TestArchive:
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_delete_archives_and_hides_from_lists(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)
        kept = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"

        response = await rep.client.delete(path)

        assert response.status_code == 204, response.text
        assert response.content == b""
        read = await rep.client.get(path)
        assert read.status_code == 200, read.text
        assert read.headers["etag"] == '"2"'
        body = read.json()
        assert body["archived_at"] is not None
        assert body == {
            **record,
            "version": 2,
            "archived_at": body["archived_at"],
            "updated_at": body["archived_at"],
        }
        assert await list_ids(rep.client, f"/v1/{resource}") == [kept["id"]]
        assert await list_ids(rep.client, f"/v1/{resource}", archived="true") == [record["id"]]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_archived_list_is_empty_while_all_are_live(
        self, rep: Actor, resource: str
    ) -> None:
        await create(resource, rep)

        assert await list_ids(rep.client, f"/v1/{resource}", archived="true") == []

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_patch_of_an_archived_record_is_409(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        await rep.client.delete(path)
        archived = (await rep.client.get(path)).json()

        response = await rep.client.patch(path, json=change(resource, "New"))

        assert_problem(response, 409, "conflict")
        assert (await rep.client.get(path)).json() == archived

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_delete_again_is_204_and_changes_nothing(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        await rep.client.delete(path)
        archived = (await rep.client.get(path)).json()

        again = await rep.client.delete(path)

        assert again.status_code == 204, again.text
        assert (await rep.client.get(path)).json() == archived


class TestRestore:
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_restore_brings_the_record_back(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        await rep.client.delete(path)

        response = await rep.client.post(f"{path}/restore")

        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"3"'
        body = response.json()
        assert body == {**record, "version": 3, "updated_at": body["updated_at"]}
        assert body["archived_at"] is None
        assert body["updated_at"] > record["updated_at"]
        assert (await rep.client.get(path)).json() == body
        assert await list_ids(rep.client, f"/v1/{resource}") == [record["id"]]
        assert await list_ids(rep.client, f"/v1/{resource}", archived="true") == []

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_restored_record_can_be_edited(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        await rep.client.delete(path)
        await rep.client.post(f"{path}/restore")

        response = await rep.client.patch(
            path, json=change(resource, "Back"), headers={"If-Match": '"3"'}
        )

        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"4"'

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_restoring_a_live_record_changes_nothing(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)

        response = await rep.client.post(f"/v1/{resource}/{record['id']}/restore")

        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json() == record


class TestIfMatch:
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_current_etag_succeeds(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        etag = (await rep.client.get(path)).headers["etag"]

        patched = await rep.client.patch(
            path, json=change(resource, "One"), headers={"If-Match": etag}
        )
        deleted = await rep.client.delete(path, headers={"If-Match": patched.headers["etag"]})

        assert patched.status_code == 200, patched.text
        assert patched.headers["etag"] == '"2"'
        assert deleted.status_code == 204, deleted.text

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_stale_etag_on_patch_is_412_and_changes_nothing(
        self, rep: Actor, resource: str
    ) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        current = (await rep.client.patch(path, json=change(resource, "One"))).json()

        response = await rep.client.patch(
            path, json=change(resource, "Two"), headers={"If-Match": '"1"'}
        )

        body = assert_problem(response, 412, "precondition-failed")
        assert body["current_version"] == 2
        assert (await rep.client.get(path)).json() == current

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_future_etag_is_412(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)

        response = await rep.client.patch(
            f"/v1/{resource}/{record['id']}",
            json=change(resource, "x"),
            headers={"If-Match": '"7"'},
        )

        assert assert_problem(response, 412, "precondition-failed")["current_version"] == 1

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_stale_etag_on_delete_is_412_and_keeps_the_record(
        self, rep: Actor, resource: str
    ) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        current = (await rep.client.patch(path, json=change(resource, "One"))).json()

        response = await rep.client.delete(path, headers={"If-Match": '"1"'})

        body = assert_problem(response, 412, "precondition-failed")
        assert body["current_version"] == 2
        assert (await rep.client.get(path)).json() == current
        assert await list_ids(rep.client, f"/v1/{resource}") == [record["id"]]

    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize("header", ["abc", '"abc"', '"1.5"', '"-1"', '""'])
    async def test_malformed_if_match_is_422(self, rep: Actor, resource: str, header: str) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"

        patched = await rep.client.patch(
            path, json=change(resource, "x"), headers={"If-Match": header}
        )
        deleted = await rep.client.delete(path, headers={"If-Match": header})

        for response in (patched, deleted):
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"header.If-Match"}
        assert (await rep.client.get(path)).json() == record

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_star_matches_any_version(self, rep: Actor, resource: str) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        await rep.client.patch(path, json=change(resource, "One"))

        patched = await rep.client.patch(
            path, json=change(resource, "Two"), headers={"If-Match": "*"}
        )
        deleted = await rep.client.delete(path, headers={"If-Match": "*"})

        assert patched.status_code == 200, patched.text
        assert patched.headers["etag"] == '"3"'
        assert deleted.status_code == 204, deleted.text

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_stale_etag_on_archived_record_delete_is_412(
        self, rep: Actor, resource: str
    ) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        await rep.client.delete(path)

        response = await rep.client.delete(path, headers={"If-Match": '"1"'})

        assert assert_problem(response, 412, "precondition-failed")["current_version"] == 2


class TestConcurrentWrites:
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_same_if_match_exactly_one_patch_wins(
        self, rep: Actor, manager: Actor, resource: str
    ) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"

        responses = await asyncio.gather(
            rep.client.patch(path, json=change(resource, "Rep"), headers={"If-Match": '"1"'}),
            manager.client.patch(
                path, json=change(resource, "Manager"), headers={"If-Match": '"1"'}
            ),
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 412], [response.text for response in responses]
        winner = next(response for response in responses if response.status_code == 200)
        loser = next(response for response in responses if response.status_code == 412)
        assert_problem(loser, 412, "precondition-failed")
        final = await rep.client.get(path)
        assert final.headers["etag"] == '"2"'
        assert final.json() == winner.json()

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_the_losing_patch_is_told_the_current_version(
        self, rep: Actor, manager: Actor, resource: str
    ) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"

        responses = await asyncio.gather(
            rep.client.patch(path, json=change(resource, "Rep"), headers={"If-Match": '"1"'}),
            manager.client.patch(
                path, json=change(resource, "Manager"), headers={"If-Match": '"1"'}
            ),
        )

        loser = next(response for response in responses if response.status_code != 200)
        assert assert_problem(loser, 412, "precondition-failed").get("current_version") == 2

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_same_if_match_patch_and_delete_exactly_one_wins(
        self, rep: Actor, resource: str
    ) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"

        patched, deleted = await asyncio.gather(
            rep.client.patch(path, json=change(resource, "x"), headers={"If-Match": '"1"'}),
            rep.client.delete(path, headers={"If-Match": '"1"'}),
        )

        # The loser is the stale one (412); a PATCH that lost to the archive may say 409 instead.
        assert (patched.status_code, deleted.status_code) in ((200, 412), (412, 204), (409, 204)), (
            patched.text,
            deleted.text,
        )
        final = await rep.client.get(path)
        assert final.json()["version"] == 2
        assert (final.json()["archived_at"] is None) == (patched.status_code == 200)

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_concurrent_patches_without_if_match_each_bump_the_version(
        self, rep: Actor, manager: Actor, resource: str
    ) -> None:
        record = await create(resource, rep)
        path = f"/v1/{resource}/{record['id']}"
        first_change = change(resource, "Rep")
        second_change = {"external_id": "erp-concurrent"}

        responses = await asyncio.gather(
            rep.client.patch(path, json=first_change),
            manager.client.patch(path, json=second_change),
        )

        assert [response.status_code for response in responses] == [200, 200]
        assert sorted(response.json()["version"] for response in responses) == [2, 3]
        final = (await rep.client.get(path)).json()
        assert final["version"] == 3
        assert {**final, **first_change, **second_change} == final

    async def test_concurrent_creates_with_one_email_give_one_201_and_one_409(
        self, rep: Actor, manager: Actor
    ) -> None:
        email = unique_email()

        responses = await asyncio.gather(
            rep.client.post("/v1/contacts", json={"email": email}),
            manager.client.post("/v1/contacts", json={"email": email.upper()}),
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201, 409], [response.text for response in responses]
        created = next(response for response in responses if response.status_code == 201)
        conflict = next(response for response in responses if response.status_code == 409)
        assert assert_problem(conflict, 409, "conflict")["existing_id"] == created.json()["id"]

    async def test_concurrent_creates_with_one_domain_give_one_201_and_one_409(
        self, rep: Actor, manager: Actor
    ) -> None:
        responses = await asyncio.gather(
            rep.client.post("/v1/companies", json={"name": "A", "domain": "race.example.com"}),
            manager.client.post(
                "/v1/companies", json={"name": "B", "domain": "https://race.example.com/"}
            ),
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201, 409], [response.text for response in responses]
