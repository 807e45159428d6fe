"""Contacts on deals, with roles: add, change role, list, remove, and the deal list filter."""

from tests.api.factories import archive, create_contact, create_deal, list_ids
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


class TestContactsOnADeal:
    async def test_add_list_embed_and_remove(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        alice = await create_contact(rep, first_name="Alice", last_name="Ng", email="a@x.example")
        bob = await create_contact(rep, first_name="Bob")
        path = f"/v1/deals/{deal['id']}/contacts"
        response = await rep.client.post(
            path, json={"contact_id": alice["id"], "role": "decision_maker"}
        )
        assert response.status_code == 201, response.text
        assert response.headers["location"] == f"{path}/{alice['id']}"
        link = response.json()
        assert link["contact_id"] == alice["id"]
        assert link["role"] == "decision_maker"
        assert link["added_by"] == str(rep.id)
        assert link["contact"] == {
            "id": alice["id"],
            "first_name": "Alice",
            "last_name": "Ng",
            "email": "a@x.example",
        }
        await rep.client.post(path, json={"contact_id": bob["id"]})

        listed = await rep.client.get(path)
        assert listed.status_code == 200
        assert [(c["contact_id"], c["role"]) for c in listed.json()["data"]] == [
            (alice["id"], "decision_maker"),
            (bob["id"], "other"),
        ]
        single = await rep.client.get(f"{path}/{alice['id']}")
        assert single.json() == link
        read = await rep.client.get(f"/v1/deals/{deal['id']}")
        assert read.json()["contacts"] == listed.json()["data"]
        assert read.json()["version"] == 3

        assert (await rep.client.delete(f"{path}/{bob['id']}")).status_code == 204
        assert_problem(await rep.client.delete(f"{path}/{bob['id']}"), 404, "not-found")
        assert_problem(await rep.client.get(f"{path}/{bob['id']}"), 404, "not-found")
        read = await rep.client.get(f"/v1/deals/{deal['id']}")
        assert [c["contact_id"] for c in read.json()["contacts"]] == [alice["id"]]
        assert read.json()["version"] == 4

    async def test_adding_again_changes_the_role(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        contact = await create_contact(rep)
        path = f"/v1/deals/{deal['id']}/contacts"
        await rep.client.post(path, json={"contact_id": contact["id"], "role": "influencer"})
        same = await rep.client.post(path, json={"contact_id": contact["id"], "role": "influencer"})
        assert same.status_code == 200
        changed = await rep.client.post(
            path, json={"contact_id": contact["id"], "role": "champion"}
        )
        assert changed.status_code == 200
        assert changed.json()["role"] == "champion"
        read = (await rep.client.get(f"/v1/deals/{deal['id']}")).json()
        assert [c["role"] for c in read["contacts"]] == ["champion"]
        assert read["version"] == 3, "re-adding with the same role is not a change"

    async def test_bad_links(self, rep: Actor, other_rep: Actor) -> None:
        deal = await create_deal(rep)
        archived = await create_contact(rep)
        await archive(rep, f"/v1/contacts/{archived['id']}")
        path = f"/v1/deals/{deal['id']}/contacts"
        unknown = "0190a0a0-0000-7000-8000-000000000000"
        for contact_id in (archived["id"], unknown):
            response = await rep.client.post(path, json={"contact_id": contact_id})
            assert error_fields(assert_problem(response, 422, "validation")) == {"body.contact_id"}
        contact = await create_contact(rep)
        response = await rep.client.post(path, json={"contact_id": contact["id"], "role": "boss"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.role"}
        response = await other_rep.client.post(path, json={"contact_id": contact["id"]})
        assert_problem(response, 403, "forbidden")
        response = await rep.client.post(
            path, json={"contact_id": contact["id"]}, headers={"If-Match": '"7"'}
        )
        assert_problem(response, 412, "precondition-failed")
        assert (await rep.client.get(path)).json()["data"] == []

    async def test_deals_filter_by_contact(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        on = await create_deal(rep)
        await create_deal(rep)
        await rep.client.post(f"/v1/deals/{on['id']}/contacts", json={"contact_id": contact["id"]})
        assert await list_ids(rep.client, "/v1/deals", contact_id=contact["id"]) == [on["id"]]
