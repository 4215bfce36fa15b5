"""The neurotriage web app: patients, uploads, background diagnosis, reports with a NiiVue viewer."""
