from tests.api.helpers import assert_problem
from tests.conftest import Actor


class TestCreateContact:
    async def test_normalizes_and_returns_location_and_etag(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts",
            json={"first_name": "  Jane  Ann ", "email": " JANE@Example.COM ", "phone": "(415) 555-2671"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["first_name"] == "Jane Ann"
        assert body["email"] == "jane@example.com"
        assert body["phone"] == "+14155552671"
        assert body["owner_id"] == str(rep.id)
        assert response.headers["location"] == f"/v1/contacts/{body['id']}"
        assert response.headers["etag"] == '"1"'

    async def test_duplicate_email_is_409_naming_existing(self, rep: Actor) -> None:
        first = await rep.client.post("/v1/contacts", json={"email": "dup@example.com"})
        second = await rep.client.post("/v1/contacts", json={"email": "DUP@example.com"})
        body = assert_problem(second, 409, "conflict")
        assert body["existing_id"] == first.json()["id"]
